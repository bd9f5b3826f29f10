"""Breaking a core component on purpose fails the promises that cover it, in time, naming the cause.

Each test breaks one thing with the admin identity (CoreDNS scaled to 0, a deny-all policy in
the probe namespace, the node cordoned, containerd stopped), runs the covering suites as a user
would, and reads the JSON summary: the covering promises failed by their own checks (outcome
`failed`, from the test's body: a fixture that errored in setup proves nothing about the
promise), each failure's diagnosis names the cause, and the run ended within the named timeouts
(scaled down, so the test stays short).
The component is restored in `finally`, and the test waits until the cluster is healthy again.
The cluster is shared, so each test holds the full-run lease from before it breaks anything
until it has restored it: no other full run can see the broken component.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from contextlib import contextmanager

import pytest
from kubernetes import client as k8s

from conformance import run as runs, waiting
from conformance.cluster import paths
from tests.integration.core_runs import ROOT, run_suites

pytestmark = pytest.mark.serial

# Named timeouts are scaled down so that a broken component fails its promise in seconds, not
# minutes; the promise must still fail by its own wait, not by the run's limit.
SCALE = 0.25
NODE = "pcf-node"
RECOVER_S = 180


def _core(admin_api):
    return k8s.CoreV1Api(admin_api)


def _wait(what: str, probe, until, limit_s: float = RECOVER_S):
    return waiting.wait_for(what, probe, until=until, timeout=float(limit_s), interval=1.0)


def _coredns_ready(admin_api) -> int:
    return k8s.AppsV1Api(admin_api).read_namespaced_deployment("coredns", "kube-system").status.ready_replicas or 0


def _node_ready(admin_api) -> str:
    node = _core(admin_api).read_node(NODE)
    return next(c.status for c in node.status.conditions if c.type == "Ready")


def _cites(run, promise: str, cause: str) -> None:
    """Every result of the promise failed by its own check (not an error in setup), and its
    diagnosis names the cause."""
    assert run.failed_by_its_check(promise, cause) == {}, run.output[-6000:]


def _within(run, promise: str, timeout_name: str, margin_s: float = 30) -> None:
    limit = waiting.TIMEOUTS[timeout_name].seconds * SCALE + margin_s
    for f in run.failures(promise):
        assert f["duration_s"] <= limit, f"{f['nodeid']} took {f['duration_s']} s, above {limit:g} s"


@contextmanager
def _renewing(lease: runs.RunLease):
    """Renew the lease every third of its TTL while the body runs; a missed renewal is retried."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(lease.ttl_s / 3):
            try:
                lease.renew()
            except Exception:  # noqa: BLE001 - the next round retries; the break is short
                pass

    thread = threading.Thread(target=loop, name="pcf-breakage-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@contextmanager
def holding(admin_api, run_id: str):
    """The full-run lease as `run_id`, taken (waiting for any other full run to end) and renewed
    until the body ends."""
    lease = runs.RunLease(admin_api, runs.RunIdentity(run_id, "full"))
    waiting.wait_for("the full-run lease (another full run holds it)", lease.acquire, until=lambda _: True,
                     timeout=600.0, interval=2.0, retry_on=(runs.LeaseHeld,))
    try:
        with _renewing(lease):
            yield lease
    finally:
        lease.release()


@pytest.fixture
def held(admin_api):
    """The full-run lease, taken before anything is broken and kept until the test has restored
    it. The suite run the test starts carries the same run id, so it takes the lease as its own,
    and releases it when it ends; `_judge` takes it back at once."""
    with holding(admin_api, runs.new_run_id()) as lease:
        yield lease


def _judge(held: runs.RunLease, tests: list[str], tmp_path, keyword: str):
    """Run the covering suites as a user would, under the test's hold of the lease."""
    try:
        return run_suites(tests, tmp_path, keyword=keyword,
                          extra=(f"--timeout-scale={SCALE}", f"--run-id={held.run.run_id}"))
    finally:
        held.acquire()  # the run released the lease it shared; hold it until the component is restored


def test_coredns_scaled_to_zero_fails_dns_promises_naming_the_deployment(admin_api, held, tmp_path):
    apps = k8s.AppsV1Api(admin_api)
    before = apps.read_namespaced_deployment("coredns", "kube-system").spec.replicas
    try:
        apps.patch_namespaced_deployment_scale("coredns", "kube-system", {"spec": {"replicas": 0}})
        _wait("no CoreDNS pod left", lambda: _core(admin_api).list_namespaced_pod(
            "kube-system", label_selector="k8s-app=kube-dns").items, until=lambda pods: not pods)
        run = _judge(held, ["suites/test_dns.py"], tmp_path,
                     keyword="service_fqdn or nxdomain or replicas_the_profile or name_and_ip")
    finally:
        apps.patch_namespaced_deployment_scale("coredns", "kube-system", {"spec": {"replicas": before}})
        _wait("CoreDNS ready again", lambda: _coredns_ready(admin_api), until=lambda n: n >= before)
    assert run.exit_code == 1, run.output
    for promise in ("dns/resolve/service-fqdn", "dns/resolve/nxdomain", "dns/server/replicas-match-profile",
                    "dns/server/service-matches-profile"):
        _cites(run, promise, "Deployment kube-system/coredns has 0 of 0 replicas ready")
    assert "0 of 0 replicas ready" in run.failures("dns/server/replicas-match-profile")[0]["reason"]


def test_deny_all_policy_fails_connectivity_and_policy_promises_naming_the_policy(admin_api, held, tmp_path):
    prefix = f"pcf-{held.run.run_id}-shared-core-probes"
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "deny-all", "labels": {"app.kubernetes.io/managed-by": "platform-conformance"}},
              "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
    net = k8s.NetworkingV1Api(admin_api)
    placed: list[str] = []
    stop = threading.Event()

    def place_policy() -> None:
        # The run creates its probe namespace itself; the policy goes in as soon as it exists.
        def probe_namespace():
            return next((n.metadata.name for n in _core(admin_api).list_namespace().items
                         if n.metadata.name.startswith(prefix)), None)
        try:
            ns = waiting.wait_for(f"namespace {prefix}-*", probe_namespace, timeout=120.0, interval=0.2)
        except AssertionError:
            return
        if not stop.is_set():
            net.create_namespaced_network_policy(ns, policy)
            placed.append(ns)

    placer = threading.Thread(target=place_policy, daemon=True)
    placer.start()
    try:
        run = _judge(held, ["suites/test_networking.py", "suites/test_dns.py"], tmp_path,
                     keyword="same_node or cluster_ip or nodeport or default_deny or service_fqdn")
    finally:
        stop.set()
        placer.join(timeout=130)
    assert placed, f"the probe namespace {prefix}-* never appeared:\n{run.output}"
    assert run.exit_code == 1, run.output
    cause = f"NetworkPolicy {placed[0]}/deny-all selects every pod: ingress denied, egress denied"
    for promise in ("networking/pod-to-pod/same-node", "networking/service/cluster-ip",
                    "networking/service/nodeport-from-outside", "networking/policy/default-deny-ingress",
                    "dns/resolve/service-fqdn"):
        _cites(run, promise, cause)
        _within(run, promise, "pod_ready")


def test_cordoned_node_fails_schedulable_and_pod_start_naming_the_cordon(admin_api, held, tmp_path):
    core = _core(admin_api)
    try:
        core.patch_node(NODE, {"spec": {"unschedulable": True}})
        run = _judge(held, ["suites/test_control_plane.py", "suites/test_runtime.py"], tmp_path,
                     keyword="cordoned or starts_and_becomes_ready")
    finally:
        core.patch_node(NODE, {"spec": {"unschedulable": False}})
    assert run.exit_code == 1, run.output
    cause = f"node {NODE} is cordoned"
    _cites(run, "control-plane/nodes/schedulable", cause)
    _cites(run, "runtime/pods/start", cause)
    _within(run, "runtime/pods/start", "pod_ready")
    # The wait's own evidence shows the scheduler's reason too (the not-ready pod, described).
    assert "node(s) were unschedulable" in run.failures("runtime/pods/start")[0]["diagnosis"]


def _cluster(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "conformance.cluster", *args], cwd=ROOT, check=True, timeout=60,
                   capture_output=True)


def test_stopped_runtime_fails_node_ready_and_pod_start_naming_the_runtime(admin_api, held, tmp_path):
    try:
        _cluster("hold", paths.runtime_process())
        _wait(f"node {NODE} to report NotReady", lambda: _node_ready(admin_api), until=lambda s: s != "True")
        run = _judge(held, ["suites/test_control_plane.py", "suites/test_runtime.py"], tmp_path,
                     keyword="every_expected_node_is_ready or starts_and_becomes_ready")
    finally:
        _cluster("release", paths.runtime_process())
        _wait(f"node {NODE} Ready again", lambda: _node_ready(admin_api), until=lambda s: s == "True")
        _wait("CoreDNS ready again", lambda: _coredns_ready(admin_api), until=lambda n: n >= 1)
    assert run.exit_code == 1, run.output
    cause = f"node {NODE} is not Ready"
    _cites(run, "control-plane/nodes/ready", cause)
    _cites(run, "runtime/pods/start", cause)
    _within(run, "runtime/pods/start", "pod_ready")
    assert "container runtime" in run.failures("control-plane/nodes/ready")[0]["diagnosis"]
