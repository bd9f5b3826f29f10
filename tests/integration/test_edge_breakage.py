"""Breaking the edge on purpose fails the LoadBalancer and ingress promises that cover it, naming the cause.

Like test_core_breakage: each test breaks one thing with the admin identity (MetalLB's speakers
stopped, the run's test pool exhausted, Contour stopped, Envoy stopped), runs the edge suites
as a user would under the held full-run lease, and reads the JSON summary: the covering
promises failed by their own checks with the cause in their first line or diagnosis. The
component is restored in `finally` and the test waits until it serves again.
"""
from __future__ import annotations

import subprocess
import uuid

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from conformance import manifests, run as runs, waiting
from conformance.probes import loadbalancer as lb
from tests.integration.core_runs import run_suites
from tests.integration.test_core_breakage import SCALE, held  # noqa: F401 - the lease fixture
from tiers import needs

pytestmark = [pytest.mark.serial, needs("metallb", "metallb-pool", "contour")]

METALLB, CONTOUR = "metallb-system", "projectcontour"
EDGE = ("suites/test_loadbalancer.py", "suites/test_ingress.py")
NOWHERE = {"platform-conformance.io/no-such-node": "true"}
RECOVER_S = 180.0


def _judge(held, tmp_path, keyword: str, profile: str = "local"):  # noqa: F811 - the fixture
    try:
        return run_suites(list(EDGE), tmp_path, keyword=keyword, profile=profile,
                          extra=(f"--timeout-scale={SCALE}", f"--run-id={held.run.run_id}"))
    finally:
        # The run released the lease it shared; hold it again until the component is restored
        # (another full run waiting for the lease may take it first: then wait for that one).
        waiting.wait_for("the full-run lease back", held.acquire, until=lambda _: True, timeout=900.0,
                         interval=2.0, retry_on=(runs.LeaseHeld,))


def _cites(run, promise: str, cause: str) -> None:
    """Every result of the promise failed in its body, with the cause in its first line or diagnosis."""
    results = run.promises.get(promise, [])
    assert results, f"{promise} did not run:\n{run.output[-4000:]}"
    for r in results:
        assert r["outcome"] == "failed", f"{r['nodeid']}: {r['outcome']} ({r['reason']})\n{run.output[-4000:]}"
        assert r["reason"].split(":", 1)[0].rsplit(".", 1)[-1] in ("AssertionError", "WaitTimeout"), r["reason"]
        assert cause in r["reason"] + (r["diagnosis"] or ""), f"{r['nodeid']} does not name {cause!r}:\n{r['reason']}"


def _park(apps: k8s.AppsV1Api, namespace: str, daemonset: str, selector: str) -> None:
    """Stop a DaemonSet's pods by giving it a node selector no node matches."""
    apps.patch_namespaced_daemon_set(daemonset, namespace, {"spec": {"template": {"spec": {"nodeSelector": NOWHERE}}}})
    waiting.wait_for(f"no {daemonset} pod left in {namespace}", lambda: k8s.CoreV1Api(apps.api_client).list_namespaced_pod(
        namespace, label_selector=selector).items, until=lambda pods: not pods, timeout=RECOVER_S, interval=1.0)


def _unpark(apps: k8s.AppsV1Api, namespace: str, daemonset: str) -> None:
    key = next(iter(NOWHERE))
    apps.patch_namespaced_daemon_set(daemonset, namespace, [
        {"op": "remove", "path": f"/spec/template/spec/nodeSelector/{key.replace('/', '~1')}"}])
    waiting.wait_for(f"DaemonSet {namespace}/{daemonset} ready again", lambda: apps.read_namespaced_daemon_set(
        daemonset, namespace).status, until=lambda s: s.desired_number_scheduled and s.number_ready == s.desired_number_scheduled
        and s.updated_number_scheduled == s.desired_number_scheduled, timeout=RECOVER_S, interval=1.0)


def _forget_neighbours() -> None:
    """The outside host forgets the LAN's MAC addresses, so only a live speaker can answer for an address."""
    subprocess.run(["ip", "-n", "pcf-outside", "neigh", "flush", "all"], check=True, timeout=10)


def test_stopped_speaker_fails_outside_traffic_naming_the_speakers(admin_api, held, tmp_path):  # noqa: F811
    apps = k8s.AppsV1Api(admin_api)
    try:
        _park(apps, METALLB, "speaker", "app=metallb,component=speaker")
        _forget_neighbours()
        run = _judge(held, tmp_path, "reaches_backend_through_address or gets_address_from_pool")
    finally:
        _unpark(apps, METALLB, "speaker")
    assert run.exit_code == 1, run.output
    _cites(run, "metallb/traffic/from-outside", f"DaemonSet {METALLB}/speaker: 0 of 0 speakers ready")
    # Addresses are still handed out: the controller, not the speaker, assigns them.
    assert run.outcomes("metallb/address/assigned-within-budget") == {"passed"}, run.output


def test_exhausted_test_pool_fails_address_promise_naming_metallb_reason(admin_api, held, tmp_path):  # noqa: F811
    """The run's shared pool is made before the run (under the name the run will give it) with one
    address per family, and a Service outside the run takes both; the run then finds it full."""
    from tinysuite import derived_profile

    profile = derived_profile(tmp_path / "profile.yaml", components={"metallb": {
        "test_addresses": ["192.168.77.220-192.168.77.222", "fd00:77::220-fd00:77::222"]}})
    identity = runs.RunIdentity(held.run.run_id, "full")
    pool = identity.name("lb-test")
    ranges = lb.split_test_ranges(["192.168.77.220-192.168.77.222", "fd00:77::220-fd00:77::222"])
    core = k8s.CoreV1Api(admin_api)
    ns = f"pcf-edge-hog-{uuid.uuid4().hex[:6]}"
    stamp = {runs.MANAGED_BY_LABEL: runs.MANAGED_BY, runs.RUN_LABEL: identity.run_id}
    docs = lb.pool_documents(pool, ranges.shared)
    core.create_namespace({"metadata": {"name": ns, "labels": {runs.MANAGED_BY_LABEL: runs.MANAGED_BY}}})
    try:
        for doc in docs:
            doc["metadata"]["labels"] = dict(stamp)
        manifests.apply(docs, admin_api, namespace=METALLB)
        manifests.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "hog", "annotations": {lb.POOL_ANNOTATION: pool}}, "spec": {
            "type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"],
            "selector": {"app": "none"}, "ports": [{"port": 80}]}}], admin_api, namespace=ns)
        waiting.wait_for("Service hog to hold the pool's addresses", lambda: lb.service(admin_api, ns, "hog"),
                         until=lambda s: s.complete, timeout=60.0, interval=0.5)
        run = _judge(held, tmp_path, "gets_address_from_pool", profile=str(profile))
    finally:
        core.delete_namespace(ns)
        waiting.wait_for(f"namespace {ns} to be gone", lambda: [n.metadata.name for n in core.list_namespace().items],
                         until=lambda names: ns not in names, timeout=RECOVER_S)
        dyn = DynamicClient(admin_api)
        for doc in reversed(docs):
            runs.delete_and_wait(dyn, doc["apiVersion"], doc["kind"], pool, METALLB)
    assert run.exit_code == 1, run.output
    _cites(run, "metallb/address/assigned-within-budget", f"no available IPs in pool {pool}")


def test_stopped_contour_fails_new_routes_naming_the_deployment(admin_api, held, tmp_path):  # noqa: F811
    apps = k8s.AppsV1Api(admin_api)
    try:
        apps.patch_namespaced_deployment_scale("contour", CONTOUR, {"spec": {"replicas": 0}})
        waiting.wait_for("no Contour pod left", lambda: k8s.CoreV1Api(admin_api).list_namespaced_pod(
            CONTOUR, label_selector="app=contour").items, until=lambda pods: not pods, timeout=RECOVER_S, interval=1.0)
        run = _judge(held, tmp_path, "host_routes_to_its_backend or path_rules or controller_serves")
    finally:
        apps.patch_namespaced_deployment_scale("contour", CONTOUR, {"spec": {"replicas": 1}})
        waiting.wait_for("Contour ready again", lambda: apps.read_namespaced_deployment("contour", CONTOUR).status,
                         until=lambda s: (s.ready_replicas or 0) >= 1, timeout=RECOVER_S, interval=1.0)
    assert run.exit_code == 1, run.output
    cause = f"Deployment {CONTOUR}/contour: 0 of 0 ready"
    for promise in ("ingress/route/host-and-sni", "ingress/route/paths", "ingress/controller/serving"):
        _cites(run, promise, cause)


def test_stopped_envoy_fails_ingress_promises_naming_the_daemonset(admin_api, held, tmp_path):  # noqa: F811
    apps = k8s.AppsV1Api(admin_api)
    try:
        _park(apps, CONTOUR, "envoy", "app=envoy")
        run = _judge(held, tmp_path, "host_routes_to_its_backend or unknown_host or declared_host or controller_serves")
    finally:
        _unpark(apps, CONTOUR, "envoy")
    assert run.exit_code == 1, run.output
    cause = f"DaemonSet {CONTOUR}/envoy: 0 of 0 ready"
    for promise in ("ingress/route/host-and-sni", "ingress/route/unknown-host-default",
                    "ingress/redirect/declared-hosts", "ingress/controller/serving"):
        _cites(run, promise, cause)
