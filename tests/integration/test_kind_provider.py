"""The kind provider on this machine, a tier of its own: its node image boots systemd with
kind's entrypoint and preloads its images, and `cluster up --provider kind` gives a Ready
multi-node cluster on which the stack's core installs and pods reach pods across nodes.

Runs only where the kind tier's builds are cached (`nox -s cluster -- --provider kind` builds
them); a kind cluster this test brought up is deleted again, one it found is left as it was.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance.cluster import build, kind, kind_node, paths, tiers
from conformance.waiting import wait_for

pytestmark = [pytest.mark.timeout(3600)]
BOOT = "pcf-kind-boot-check"
BOOT_LIMIT_S = 300      # systemd, containerd and the import of every carried image, on 2 cores
CLI_LIMIT_S = 1800      # cluster up: the node image (cached) and three nodes joining


@pytest.fixture(scope="module", autouse=True)
def kind_tier_cached():
    lacking = tiers.missing("kind")
    if lacking:
        pytest.skip(f"tier kind not built on this machine: {', '.join(lacking)}; "
                    "build it with `nox -s cluster -- --provider kind`")


def _podman(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=kind.env())
    assert not check or proc.returncode == 0, f"podman {' '.join(args)}: {proc.stderr}"
    return proc


def _harness(*args: str, module: str = "conformance.cluster") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=paths.REPO, capture_output=True, text=True,
                          timeout=CLI_LIMIT_S)


def test_node_image_boots_systemd_and_preloads_the_control_plane_images(tmp_path):
    """A container of the node image, started as kind starts one (privileged, own cgroup
    namespace, tmpfs /run and /tmp, /var a volume) but with no network and no host folders, runs systemd as PID 1 with containerd
    active and kubeadm's images imported before the kubelet may start."""
    progs, image = kind.prepare()
    kind.STATE.mkdir(parents=True, exist_ok=True)
    kind.CONTAINERS_CONF.write_text(kind.containers_conf())
    _podman("rm", "--force", BOOT, check=False)
    _podman("run", "--detach", "--name", BOOT, "--privileged", "--cgroupns=private", "--network=none",
            "--tmpfs", "/tmp", "--tmpfs", "/run", "--volume", "/var", image)
    try:
        state = wait_for(f"containerd and the image preload in container {BOOT}",
                         lambda: _podman("exec", BOOT, "systemctl", "is-active", "containerd",
                                         "pcf-preload-images", check=False).stdout.split(),
                         until=lambda s: s == ["active", "active"], timeout=BOOT_LIMIT_S, interval=2)
        assert state == ["active", "active"]
        assert _podman("exec", BOOT, "cat", "/proc/1/comm").stdout.strip() == "systemd"
        listed = _podman("exec", BOOT, "ctr", "--namespace=k8s.io", "images", "list", "--quiet").stdout.split()
        k8s = progs["kubernetes"].version
        wanted = {f"registry.k8s.io/{c}:{k8s}" for c in ("kube-apiserver", "kube-controller-manager",
                                                         "kube-scheduler", "kube-proxy")}
        assert wanted - set(listed) == set(), listed
        # The units that would otherwise ask for what root may not set here start cleanly.
        failed = _podman("exec", BOOT, "systemctl", "list-units", "--failed", "--plain", "--no-legend",
                         check=False).stdout.split("\n")
        assert not [u for u in failed if u.startswith(("containerd", "pcf-preload", "undo-mount"))], failed
    finally:
        _podman("rm", "--force", "--volumes", BOOT, check=False)


@pytest.fixture(scope="module")
def kind_cluster():
    """The kind cluster, brought up through the harness's command line (deleted after if this
    test made it)."""
    existed = kind.exists(build.programs())
    up = _harness("up", "--provider=kind")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield up
    finally:
        if not existed:
            down = _harness("down", "--provider=kind")
            assert down.returncode == 0, down.stderr[-3000:]
            assert kind.status() == {}, "kind nodes left behind"


def test_cluster_up_gives_one_control_plane_and_two_workers_ready_in_both_families(kind_cluster):
    nodes = json.loads(kind.kubectl("get", "nodes", "-o", "json"))["items"]
    roles = sorted("control-plane" if "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"] else "worker"
                   for n in nodes)
    assert roles == ["control-plane", "worker", "worker"]
    assert kind.nodes_not_ready() == {}
    for node in nodes:
        cidrs = node["spec"].get("podCIDRs", [])
        assert [c.split(".")[0:2] if "." in c else "v6" for c in cidrs] == [["10", "245"], "v6"], cidrs
        assert node["status"]["nodeInfo"]["kubeletVersion"] == build.programs()["kubernetes"].version


def test_stack_core_installs_and_pods_reach_pods_across_nodes(kind_cluster, tmp_path):
    """The stack's core through `--provider kind`, then the networking promises on kind's nodes:
    same node and across nodes, judged by the kind profile."""
    stack = _harness("--provider=kind", "--profile=kind", f"--kubeconfig={kind.KUBECONFIG}", "--tiers=core",
                     module="conformance.stack")
    assert stack.returncode == 0, stack.stdout[-3000:] + stack.stderr[-3000:]
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_networking.py", "-k", "same_node or another_node",
         "--profile=kind", "--mode=full", f"--kubeconfig={kind.identity_kubeconfig('runner')}",
         f"--reports={reports}", "-q", "-p", "no:cacheprovider"],
        cwd=paths.REPO, capture_output=True, text=True, timeout=CLI_LIMIT_S)
    assert proc.returncode == 0, proc.stdout[-4000:]
    summary = json.loads((reports / "summary.json").read_text())
    outcomes = {r["promise"]: r["outcome"] for r in summary["promises"]}
    assert outcomes == {"networking/pod-to-pod/same-node": "passed",
                        "networking/pod-to-pod/cross-node": "passed"}, proc.stdout[-4000:]


def _announcer(address_owner: tuple[str, str]) -> str:
    """The node MetalLB last named as announcing the Service's address (its nodeAssigned event)."""
    namespace, name = address_owner
    events = json.loads(kind.kubectl("-n", namespace, "get", "events", "-o", "json",
                                     f"--field-selector=involvedObject.name={name},reason=nodeAssigned"))["items"]
    latest = max(events, key=lambda e: e.get("lastTimestamp") or e["metadata"]["creationTimestamp"], default=None)
    return latest["message"].split('"')[1] if latest else ""


def _answers(address: str) -> int:
    """The HTTP status the host gets from the address (Envoy answers an unknown host with 404)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{address}/", timeout=3) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_metallb_l2_address_moves_when_the_announcing_node_stops(kind_cluster):
    """MetalLB's L2 address MUST move to another node when the node announcing it stops, and the
    host MUST reach the Service through it again; the stopped node comes back Ready.

    Envoy's Service (externalTrafficPolicy Local, an Envoy on each worker) holds the pinned
    address, so the announcing node is a worker and the other worker can take over."""
    from conformance import profile as profiles

    stack = _harness("--provider=kind", "--profile=kind", f"--kubeconfig={kind.KUBECONFIG}", "--tiers=core,edge",
                     module="conformance.stack")
    assert stack.returncode == 0, stack.stdout[-3000:] + stack.stderr[-3000:]
    pinned = profiles.load("kind").component("metallb").pinned[0]
    owner = tuple(pinned.service.split("/"))
    before = wait_for(f"{pinned.address} announced and answering", lambda: (_announcer(owner), _answers(pinned.address)),
                      until=lambda s: bool(s[0]) and s[1] == 404, timeout=120, interval=2)
    _podman("stop", "--time=5", before[0], timeout=120)
    try:
        after = wait_for(f"{pinned.address} announced from another node than {before[0]} and answering",
                         lambda: (_announcer(owner), _answers(pinned.address)),
                         until=lambda s: s[0] not in ("", before[0]) and s[1] == 404, timeout=120, interval=1)
        assert after[0] != before[0] and after[1] == 404
    finally:
        _podman("start", before[0], timeout=120)
        kind.wait_nodes_ready()
