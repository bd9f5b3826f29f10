"""Clusters that pull from a mirror: the profile's pull Secret reaches every run namespace.

The Secret is kept once in the control namespace; a full run copies it into each namespace it
makes, and names it plainly when it is missing. Judged from the audit log and the run's output.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import uuid

import pytest

from cluster_audit import audit_since
from conformance.cluster import paths

RUNNER_USER = "platform-conformance:runner"
ONE_PROMISE = "test_restricted_pod_runs_as_non_root"
RUN_S = 300


def suite_run(tmp_path, pull_secret: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "--profile=local", "--mode=full", "-k", ONE_PROMISE,
         "--set", f"images.pull_secret={pull_secret}", f"--reports={tmp_path}", "-p", "no:cacheprovider", "-q"],
        cwd=paths.REPO, capture_output=True, text=True, timeout=RUN_S, check=False)


@pytest.fixture
def mirror_secret(admin):
    name = f"pcf-it-pull-{uuid.uuid4().hex[:6]}"
    auth = {"auths": {"mirror.invalid": {"auth": base64.b64encode(b"user:pass").decode()}}}
    admin.create_namespaced_secret("pcf-system", {
        "metadata": {"name": name}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(auth).encode()).decode()}})
    yield name
    admin.delete_namespaced_secret(name, "pcf-system")


def test_pull_secret_is_copied_into_run_namespaces(tmp_path, mirror_secret, free_lease):
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    run = suite_run(tmp_path, mirror_secret)
    assert run.returncode == 0, run.stdout[-3000:]
    copies = [e for e in audit_since(since, RUNNER_USER)
              if e["verb"] == "create" and e["objectRef"].get("resource") == "secrets"
              and e["responseStatus"]["code"] == 201]
    assert copies and all(e["objectRef"]["namespace"].startswith("pcf-") for e in copies), copies
    assert all(e["objectRef"]["namespace"] != "pcf-system" for e in copies), copies


def test_missing_pull_secret_is_named(tmp_path, free_lease):
    run = suite_run(tmp_path, "pcf-it-absent")
    assert run.returncode == 1, run.stdout[-3000:]
    assert "pcf-system/pcf-it-absent, which does not exist" in run.stdout, run.stdout[-3000:]
    assert "Traceback" not in run.stdout
