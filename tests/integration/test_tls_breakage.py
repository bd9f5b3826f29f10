"""Breaking cert-manager's ACME path on purpose fails the TLS promises by their own checks, naming the cause.

Each test makes a broken ClusterIssuer of its own with the admin identity (the shared issuers
stay healthy for everyone else on the cluster): one pointing at an ACME URL nothing serves, one
whose TSIG key the zone refuses. A profile derived from `local` then claims that issuer and
orders from it, the covering suites run as a user would, and the JSON summary must show the
promises failed in their own bodies with a diagnosis that names the cause: the issuer's
registration error, and the ACME trail (Order and Challenge states and reasons) of the order
that could not finish. The broken issuer goes in `finally`, after the run's namespaces (whose
Challenges cert-manager cleans up through that issuer) are gone.
"""
from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from conformance import manifests, run as runs, waiting
from conformance.cluster import bind9, network, pebble
from tests.integration.core_runs import run_suites
from tests.integration.test_core_breakage import held  # noqa: F401 - the full-run lease, held while broken
from tiers import needs
from tinysuite import derived_profile

pytestmark = [pytest.mark.serial, needs("cert-manager", "cert-manager-issuers")]

SCALE = 0.25  # named timeouts scaled down: an issuance that cannot finish fails in minutes, not ten
ISSUER_API = "cert-manager.io/v1"
WRONG_URL = f"https://{network.NODE_IPV4}:14999/dir"  # nothing listens there


def _issuer(name: str, server: str, tsig_secret: str = "pcf-tsig") -> dict:
    return {"apiVersion": ISSUER_API, "kind": "ClusterIssuer",
            "metadata": {"name": name, "labels": {runs.MANAGED_BY_LABEL: runs.MANAGED_BY}},
            "spec": {"acme": {
                "server": server, "skipTLSVerify": True, "email": "platform@pcf.test",
                "privateKeySecretRef": {"name": f"{name}-account"},
                "solvers": [{"dns01": {"rfc2136": {
                    "nameserver": bind9.SERVER, "tsigKeyName": bind9.KEY_NAME, "tsigAlgorithm": "HMACSHA256",
                    "tsigSecretSecretRef": {"name": tsig_secret, "key": "tsig-secret"}}}}]}}}


def _profile(tmp_path, issuer: str):
    return derived_profile(tmp_path / "profile.yaml", components={"cert_manager": {
        "claimed": True, "cluster_issuers": [issuer], "test_issuer": issuer, "short_duration_issuer": None}})


def _remove(admin_api, docs: list[dict], run) -> None:
    """The run's namespaces first (their Challenges need the issuer to clean up), then the issuer."""
    core, dyn = k8s.CoreV1Api(admin_api), DynamicClient(admin_api)
    if run is not None:
        waiting.wait_for("the broken run's namespaces to be gone", lambda: [
            n.metadata.name for n in core.list_namespace(label_selector=runs.RUN_LABEL).items
            if n.metadata.name.startswith(f"pcf-{run}")], until=lambda left: not left, timeout="namespace_deleted")
    for doc in reversed(docs):
        runs.delete_and_wait(dyn, doc["apiVersion"], doc["kind"], doc["metadata"]["name"],
                             namespace=doc["metadata"].get("namespace"), timeout="object_deleted")
        if doc["kind"] == "ClusterIssuer":  # the ACME account key cert-manager made for it
            runs.delete_and_wait(dyn, "v1", "Secret", f"{doc['metadata']['name']}-account", namespace="cert-manager")


def _judge_broken(admin_api, held, tmp_path, docs: list[dict], issuer: str, keyword: str):  # noqa: F811
    """Apply the broken objects, run the covering suite ordering from `issuer` under the test's hold
    of the lease (its run id is the lease's), and remove them again, whatever happened. Only objects
    of the test's own are broken, so the lease is not taken back after the run."""
    run_id = None
    try:
        manifests.apply(docs, admin_api)
        run_id = held.run.run_id
        return run_suites(["suites/test_tls.py"], tmp_path, profile=_profile(tmp_path, issuer), keyword=keyword,
                          extra=(f"--timeout-scale={SCALE}", f"--run-id={run_id}"))
    finally:
        _remove(admin_api, docs, run_id)


def test_wrong_acme_url_fails_issuer_and_issuance_naming_the_url(admin_api, held,  # noqa: F811
                                                                  tmp_path):
    name = f"pcf-broken-url-{uuid.uuid4().hex[:6]}"
    run = _judge_broken(admin_api, held, tmp_path, [_issuer(name, WRONG_URL)], name, "issuer_is_ready or dns01")
    assert run.exit_code == 1, run.output
    assert run.failed_by_its_check("cert-manager/issuer/ready", "14999") == {}, run.output[-6000:]
    # The order never starts: the CertificateRequest waits on an issuer that is not Ready.
    assert run.failed_by_its_check("cert-manager/acme/dns01-issued", "CertificateRequest objects") == {}, \
        run.output[-6000:]
    assert name in run.failures("cert-manager/acme/dns01-issued")[0]["reason"]


def test_wrong_tsig_key_fails_issuance_showing_order_and_challenge(admin_api, held,  # noqa: F811
                                                                   tmp_path):
    name = f"pcf-broken-tsig-{uuid.uuid4().hex[:6]}"
    wrong = bind9.tsig_secret()[:-8] + "AAAAAAA="
    docs = [{"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": name, "namespace": "cert-manager", "labels": {runs.MANAGED_BY_LABEL: runs.MANAGED_BY}},
             "stringData": {"tsig-secret": wrong}},
            _issuer(name, pebble.ACME_DIRECTORY, tsig_secret=name)]
    run = _judge_broken(admin_api, held, tmp_path, docs, name, "dns01")
    assert run.exit_code == 1, run.output
    # The diagnosis holds the ACME trail: the pending Order and its Challenge, with the zone's refusal.
    # cert-manager's words for the zone refusing the TSIG signature: "dns: bad authentication".
    for cause in ("Order objects", "Challenge objects", "state: pending", "DNS update failed: dns: bad authentication"):
        assert run.failed_by_its_check("cert-manager/acme/dns01-issued", cause) == {}, run.output[-6000:]
    assert name in run.failures("cert-manager/acme/dns01-issued")[0]["reason"]
