"""The suite's images can be published and pulled: the local cluster pulls them from its registry.

The images are pushed by the publishing code path (`nox -s publish-images`) to the local
registry (Debian's docker-registry on the LAN) under a prefix no earlier test used, so the node
holds nothing under the mirrored names before the pod or the run asks for them. Each test
removes the images it made the node pull. Judged from the pod's imageID, the registry's access
log (the node's runtime, CRI-O or containerd, resolving the new name there; it downloads only
the blobs its storage, shared by digest, does not hold yet) and the runtime's images.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conformance import mirror, pods
from conformance.cluster import build, crio, paths, publish, registry, stack_images
from conformance.probes import workloads
from conformance.profile import Images
from conformance.waiting import wait_for
from run_leftovers import wait_for_free_lease

RUN_S = 400
LEASE_TRIES = 5
# Far below the pod_ready timeout (180 s) a pull failure used to wait out, with a run's setup.
FAST_FAILURE_S = 90


def node_images(prefix: str) -> dict[str, str]:
    """The suite's images the node's runtime holds under `prefix`, each with its digest."""
    return stack_images.held(build.programs(), [i.pulled for i in mirror.mirrored(Images(registry_prefix=prefix))])


@pytest.fixture(scope="module")
def lan_registry():
    """The harness's registry on 192.168.77.2:5000: the supervised one, or started here the same way."""
    if paths.runtime() == "containerd":
        if str(paths.REGISTRY_HOSTS) not in (paths.STATE / "containerd.toml").read_text():
            pytest.fail("the node's containerd runs without the registry hosts config_path; "
                        "bring the cluster up again with this harness (`nox -s cluster-down cluster`)")
        registry.runtime_hosts()
    elif registry.ADDRESS not in crio.REGISTRIES.read_text():
        pytest.fail(f"the node's CRI-O does not name {registry.ADDRESS} in {crio.REGISTRIES}; "
                    "bring the cluster up again with this harness (`nox -s cluster-down cluster`)")
    if registry.ready():
        yield paths.LOGS / f"{registry.NAME}.log"
        return
    # Not under pytest's basetemp: other pytest processes on the machine prune those.
    base = Path(tempfile.mkdtemp(prefix="pcf-it-registry-"))
    log = base / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(registry.config(base / "registry.yml", storage=base / "storage"),
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"the registry on {registry.ADDRESS}", registry.ready, timeout=30, interval=0.2)
        yield log
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def prefix(lan_registry):
    """A registry prefix no earlier test used; the node forgets what it pulled from it."""
    value = f"{registry.ADDRESS}/pcf-it-{uuid.uuid4().hex[:8]}"
    yield value
    for name in node_images(value):
        stack_images.remove(build.programs(), name)


def pulls_logged(log: Path, repository: str) -> set[tuple[str, str]]:
    """(method, manifests|blobs) of the requests the node's runtime made for `repository` that succeeded."""
    agent = re.escape(paths.runtime())
    pattern = re.compile(rf'"(HEAD|GET) /v2/{re.escape(repository)}/(manifests|blobs)/\S+ HTTP/1.1" 200 .*"{agent}/')
    return {m.groups() for m in map(pattern.search, log.read_text(errors="replace").splitlines()) if m}


def test_a_pod_pulls_the_published_probe_image_from_the_registry(admin, lan_registry, prefix):
    pushed = {p.upstream: p for p in publish.publish(prefix, tls_verify=False)}
    probe = pushed[workloads.PROBE_IMAGE]
    assert probe.pushed not in node_images(prefix)
    assert f"{prefix.split('/', 1)[1]}/{workloads.PROBE_IMAGE.rsplit(':', 1)[0]}" in registry.catalog()

    ns = f"pcf-it-pull-{uuid.uuid4().hex[:6]}"
    admin.create_namespace({"metadata": {"name": ns}})
    try:
        admin.create_namespaced_pod(ns, {"metadata": {"name": "probe"}, "spec": {
            "containers": [{"name": "probe", "image": probe.pushed, "imagePullPolicy": "IfNotPresent",
                            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                                "capabilities": {"drop": ["ALL"]}}}]}})
        seen = pods.wait_pod(admin.api_client, ns, "probe")
        status = admin.read_namespaced_pod("probe", ns).status.container_statuses[0]
    finally:
        admin.delete_namespace(ns)
    assert seen.ready
    repository = probe.pushed.rsplit(":", 1)[0]
    assert status.image_id == f"{repository}@{probe.digest}", status
    assert node_images(prefix)[probe.pushed] == probe.digest
    assert {kind for _, kind in pulls_logged(lan_registry, repository.split("/", 1)[1])} >= {"manifests"}


def suite_run(tmp_path, admin_api, prefix: str, *select: str) -> tuple[subprocess.CompletedProcess, float]:
    """One full run with the profile's registry_prefix set; run again when another engineer's run
    took the lease between the wait for it and this run's start."""
    for _ in range(LEASE_TRIES):
        wait_for_free_lease(admin_api)
        t0 = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "suites", "--profile=local", "--mode=full", *select,
             "--set", f"images.registry_prefix={prefix}", f"--reports={tmp_path}", "-p", "no:cacheprovider", "-q"],
            cwd=paths.REPO, capture_output=True, text=True, timeout=RUN_S, check=False)
        if not (run.returncode == 2 and "holds the lease" in run.stdout + run.stderr):
            break
    return run, time.monotonic() - t0


def test_a_write_promise_runs_on_images_pulled_from_the_profiles_registry(tmp_path, lan_registry, prefix,
                                                                         admin_api):
    publish.publish(prefix, tls_verify=False)
    mirrored = {f"{prefix}/{name}" for name in (workloads.PROBE_IMAGE, workloads.ECHO_IMAGE)}
    assert not mirrored & set(node_images(prefix))
    run, _ = suite_run(tmp_path, admin_api, prefix, "-m", "dns", "-k", "test_pod_resolves_service_fqdn")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "verdict: pass" in run.stdout and " passed" in run.stdout, run.stdout[-3000:]
    assert mirrored <= set(node_images(prefix))
    for name in mirrored:
        assert {kind for _, kind in pulls_logged(lan_registry, name.rsplit(":", 1)[0].split("/", 1)[1])} >= {"manifests"}


def test_an_image_missing_from_the_registry_fails_at_once_naming_it(tmp_path, lan_registry, prefix, admin_api):
    run, elapsed = suite_run(tmp_path, admin_api, prefix, "-k", "test_restricted_pod_runs_as_non_root")
    assert run.returncode == 1, run.stdout[-3000:]
    assert elapsed < FAST_FAILURE_S, (elapsed, run.stdout[-3000:])
    assert "cannot pull its image" in run.stdout, run.stdout[-3000:]
    assert f"image {prefix}/{workloads.PROBE_IMAGE}" in run.stdout, run.stdout[-3000:]
    assert "nox -s publish-images" in run.stdout and "gave up waiting" not in run.stdout
