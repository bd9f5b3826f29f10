"""The kind provider: a multi-node cluster in podman containers, shaped like production.

One control-plane node and two workers (so a promise about two nodes has two schedulable
nodes), production's Kubernetes release, dual-stack, with pod and service ranges apart from
the local cluster's so both can run on one machine. The kind CLI (built from its module) does
the work; this module writes its configuration, builds what it needs and drives it. Cilium
cannot run on this kernel, so kind's default CNI would be kindnetd; its module is refused by
the module proxy here, so the nodes run kube-router (built for the local cluster already:
routes between nodes and NetworkPolicy), installed from upstream's kubeadm manifest once the
nodes are up. `variant: cilium` writes the configuration that matches production (no default
CNI, no kube-proxy) for a machine that can run Cilium.

Podman here runs rootful containers with lowered limits (containers.conf named by
CONTAINERS_CONF), and the nodes share a podman network of fixed ranges, with the DNS that
lets workers find the control plane by name.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from conformance.cluster import build, host, kind_node, paths, stack_images
from conformance.cluster.errors import HarnessError
from conformance.cluster.images import parse_image_list, read_oci_archive

NAME = "pcf-kind"
CLUSTER_LABEL = "io.x-k8s.kind.cluster"   # kind labels its containers and volumes with the cluster's name
STATE = paths.KIND_STATE
KUBECONFIG = STATE / "admin.conf"
CONTAINERS_CONF = STATE / "containers.conf"
NETWORK = "pcf-kind"
NETWORK_SUBNETS = ("192.168.78.0/24", "fd00:78::/64")
# Apart from the local cluster's (conformance/cluster/network.py: 10.244/16, 10.96/16).
POD_SUBNETS = ("10.245.0.0/16", "fd00:10:245::/56")
SERVICE_SUBNETS = ("10.97.0.0/16", "fd00:10:97::/112")
WORKERS = 2
VARIANTS = ("kube-router", "cilium")
# Debian packages the provider runs: podman, and the CNI plugin giving its network a DNS.
PACKAGES = {"podman": "podman", "mmdebstrap": "mmdebstrap",
            "/usr/lib/cni/dnsname": "golang-github-containernetworking-plugin-dnsname"}
TIMEOUTS = {"create": 900, "delete": 300, "podman": 60, "kubectl": 60, "nodes-ready": 300}


def cluster_config(image: str, *, workers: int = WORKERS, variant: str = "kube-router",
                   etcd_tag: str = "3.6.16") -> dict:
    """kind's Cluster configuration (kind.x-k8s.io/v1alpha4) for this machine."""
    if variant not in VARIANTS:
        raise HarnessError(f"kind variant {variant!r} is unknown", fix=f"use one of: {', '.join(VARIANTS)}")
    if workers < 1:
        raise HarnessError(f"kind needs at least one worker, not {workers}",
                           fix="production has a worker; promises across nodes need one")
    networking = {
        "ipFamily": "dual",
        "podSubnet": ",".join(POD_SUBNETS),
        "serviceSubnet": ",".join(SERVICE_SUBNETS),
        # kindnetd's module is refused here (kube-router is installed instead); production runs Cilium.
        "disableDefaultCNI": True,
        "kubeProxyMode": "none" if variant == "cilium" else "iptables",
    }
    kubelet = {
        "kind": "KubeletConfiguration",
        # The host runs cgroup v1, which the kubelet refuses from 1.35 on unless told otherwise.
        "failCgroupV1": False,
        # Root lacks CAP_SYS_RESOURCE: the kubelet must not lower its own OOM score.
        "oomScoreAdj": 0,
    }
    cluster = {
        "kind": "ClusterConfiguration",
        # The etcd built here; the stack installs CoreDNS itself, as on the local cluster.
        "etcd": {"local": {"imageTag": etcd_tag}},
        "dns": {"disabled": True},
    }
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": NAME,
        "networking": networking,
        "nodes": [{"role": "control-plane", "image": image},
                  *({"role": "worker", "image": image} for _ in range(workers))],
        "kubeadmConfigPatches": [yaml.safe_dump(cluster), yaml.safe_dump(kubelet)],
    }


def containers_conf(nofile: int = kind_node.NOFILE, nproc: int = kind_node.NPROC) -> str:
    """podman's containers.conf for the nodes: limits root may set here (no CAP_SYS_RESOURCE)."""
    return ("[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            # podman caps a container at 2048 processes; a node runs a kubelet and its pods.
            "pids_limit = 0\n"
            "[network]\n"
            'network_backend = "cni"\n'
            # No systemd on the host: cgroups are managed directly, events go to a file. crun
            # refuses this host's hybrid cgroups ("cgroups in hybrid mode not supported"); runc runs.
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            'runtime = "runc"\n')


def env() -> dict[str, str]:
    """What the kind CLI and podman need in their environment (containers.conf written first)."""
    if not CONTAINERS_CONF.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        CONTAINERS_CONF.write_text(containers_conf())
    return dict(os.environ, KIND_EXPERIMENTAL_PROVIDER="podman", CONTAINERS_CONF=str(CONTAINERS_CONF),
                KIND_EXPERIMENTAL_PODMAN_NETWORK=NETWORK)


def _run(argv: list[str], timeout: float, what: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env(), **kwargs)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{what}: `{' '.join(argv)}` did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise HarnessError(f"{what}: `{' '.join(argv)}` failed (exit {proc.returncode}):\n"
                           f"{(proc.stderr or proc.stdout)[-3000:].strip()}")
    return proc


MODULES = Path("/lib/modules")
MODULES_MADE = STATE / "made-lib-modules"


def ensure_modules_dir(log=print) -> None:
    """kind mounts the host's /lib/modules into every node; this kernel has its drivers built in
    and no such folder, so an empty one is made (and removed again by `down`)."""
    if MODULES.exists():
        return
    MODULES.mkdir()
    MODULES_MADE.touch()
    log(f"made an empty {MODULES} for kind to mount (this kernel loads no modules)")


def _kind(progs: dict) -> str:
    return str(progs["kind"].binary("kind"))


def ensure_network() -> None:
    """The nodes' podman network, with fixed ranges (the MetalLB pool is taken from it)."""
    if _run(["podman", "network", "exists", NETWORK], TIMEOUTS["podman"], "podman", check=False).returncode == 0:
        return
    argv = ["podman", "network", "create", "--driver=bridge", "--ipv6"]
    argv += [f"--subnet={subnet}" for subnet in NETWORK_SUBNETS]
    _run([*argv, NETWORK], TIMEOUTS["podman"], "creating the kind network")


def carried_tiers() -> tuple[str, ...]:
    """The tiers whose images the node image carries: the core, kind's own, and every add-on tier
    whose builds are cached here (another is loaded into the nodes when the stack installs it)."""
    from conformance.cluster import tiers

    return ("core", "kind", *(t for t in tiers.names() if t != "core" and not tiers.missing(t)))


def prepare(log=print) -> tuple[dict, str]:
    """Build kind, the node image and what it carries; returns the programs and the image name."""
    from conformance.cluster import tiers

    carried = carried_tiers()
    host.ensure_packages(log, extra={**PACKAGES, **stack_images.packages(carried)})
    progs = build.build_all(log=log, tiers=tiers.with_needs("kind"))
    archives = stack_images.build_all(progs, log=log, tiers=carried)
    image = kind_node.build(progs["kind"], progs["kubernetes"], progs["kubeadm"], progs["containerd"], archives,
                            log=log)
    return progs, image


def node_images(node: str) -> dict[str, str]:
    """The images one node's containerd holds: reference -> digest."""
    out = _run(["podman", "exec", node, "ctr", "--namespace=k8s.io", "images", "list"], TIMEOUTS["podman"],
               f"listing the images of {node}").stdout
    return parse_image_list(out)


def prepare_tier(tier: str, log=print) -> None:
    """Build the tier's programs and images, and load into the kind nodes each image they lack
    (the node image carries those built when it was). The tier's host-side services are the
    local cluster's (configured for its API server and LAN) and are not started for kind."""
    from conformance.cluster import tiers

    progs = build.build_all(log=log, tiers=(tier,))
    host.ensure_packages(log, extra=stack_images.packages((tier,)))
    archives = stack_images.build_all(progs, log=log, tiers=(tier,))
    nodes = sorted(status())
    held = {node: node_images(node) for node in nodes}
    for archive in archives:
        info = read_oci_archive(archive)
        if all(held[n].get(name) == info.manifest_digest for n in nodes for name in info.names):
            continue
        _run([_kind(progs), "load", "image-archive", str(archive), f"--name={NAME}"], TIMEOUTS["create"],
             f"kind load image-archive {archive.name}")
        log(f"loaded {', '.join(info.names)} into {len(nodes)} kind nodes")
    skipped = [s.__name__.rsplit(".", 1)[-1] for s in tiers.services(tier)]
    if skipped:
        log(f"tier {tier}: host services not started for kind: {', '.join(skipped)} (the profile does not "
            "claim the components that need them)")


def exists(progs: dict) -> bool:
    out = _run([_kind(progs), "get", "clusters"], TIMEOUTS["podman"], "kind get clusters").stdout
    return NAME in out.split()


def up(log=print, variant: str = "kube-router") -> None:
    """Create the kind cluster (idempotent), install its CNI and wait for every node to be Ready."""
    progs, image = prepare(log)
    STATE.mkdir(parents=True, exist_ok=True)
    CONTAINERS_CONF.write_text(containers_conf())   # this version's, over an older one
    config = STATE / "kind.yaml"
    config.write_text(yaml.safe_dump(cluster_config(image, variant=variant), sort_keys=False))
    ensure_network()
    ensure_modules_dir(log)
    if not exists(progs):
        log(f"creating kind cluster {NAME} (1 control plane, {WORKERS} workers) from {image}")
        started = time.monotonic()
        # kind prints each step as it goes; the lines are passed on as progress. Failed nodes are
        # kept (--retain) so their logs can be read.
        try:
            build._stream([_kind(progs), "create", "cluster", f"--config={config}", f"--kubeconfig={KUBECONFIG}",
                           "--retain"], None, env(), TIMEOUTS["create"], lambda line: log(f"  kind: {line.rstrip()}"))
        except HarnessError as exc:
            raise HarnessError(exc.problem, fix=f"`{_kind(progs)} export logs --name={NAME}` collects the nodes' "
                               "logs; `nox -s cluster-down -- --provider kind` removes them") from None
        log(f"kind cluster {NAME} created in {time.monotonic() - started:.0f} s")
    else:
        _run([_kind(progs), "export", "kubeconfig", f"--name={NAME}", f"--kubeconfig={KUBECONFIG}"],
             TIMEOUTS["podman"], "kind export kubeconfig")
    write_identities(log)
    if variant == "cilium":
        log("variant cilium: no CNI and no kube-proxy; install Cilium (kubeProxyReplacement=true) "
            "before the nodes become Ready")
        return
    install_kube_router(progs, log)
    wait_nodes_ready(log)


def identity_kubeconfig(name: str) -> Path:
    """The kubeconfig of one of the suite's identities on the kind cluster (reader, runner)."""
    return STATE / f"{name}.conf"


def write_identities(log=print) -> None:
    """The suite's two identities (their RBAC ships in manifests/rbac), as client certificates
    signed by the cluster's CA inside the control plane, pointing at the address the host uses."""
    from conformance.cluster.pki import IDENTITIES

    server = yaml.safe_load(KUBECONFIG.read_text())["clusters"][0]["cluster"]["server"]
    for ident in IDENTITIES:
        if ident.file not in ("reader", "runner"):
            continue
        argv = ["podman", "exec", f"{NAME}-control-plane", "kubeadm", "kubeconfig", "user",
                "--config=/kind/kubeadm.conf", f"--client-name={ident.user}",
                *(f"--org={group}" for group in ident.groups)]
        conf = yaml.safe_load(_run(argv, TIMEOUTS["kubectl"], f"kubeadm kubeconfig user {ident.user}").stdout)
        for cluster in conf["clusters"]:
            cluster["cluster"]["server"] = server
        target = identity_kubeconfig(ident.file)
        target.write_text(yaml.safe_dump(conf))
        target.chmod(0o600)
    log(f"identities reader and runner: {identity_kubeconfig('reader')}, {identity_kubeconfig('runner')}")


def kubectl(*args: str, stdin: str | None = None, timeout: float = TIMEOUTS["kubectl"]) -> str:
    """kubectl of the cluster's own release (the host's is older), against the kind cluster."""
    binary = build.programs()["kubeadm"].binary("kubectl")
    return _run([str(binary), f"--kubeconfig={KUBECONFIG}", *args], timeout, f"kubectl {args[0]}",
                input=stdin).stdout


def kube_router_manifest(progs: dict) -> list[dict]:
    """Upstream's kubeadm manifest for kube-router (routes and NetworkPolicy, no service proxy),
    read from the module cache, with the image built here and both families switched on (it
    writes each node's pod ranges into the CNI config itself)."""
    router = progs["kube-router"]
    source = router.source() / "daemonset" / "kubeadm-kuberouter.yaml"
    docs = [d for d in yaml.safe_load_all(source.read_text()) if d]
    image = f"docker.io/cloudnativelabs/kube-router:{router.version}"
    for doc in docs:
        if doc["kind"] == "DaemonSet":
            spec = doc["spec"]["template"]["spec"]
            for container in spec["containers"] + spec.get("initContainers", []):
                container["image"] = image
                container["imagePullPolicy"] = "IfNotPresent"
            spec["containers"][0]["args"] += ["--enable-ipv4=true", "--enable-ipv6=true"]
    return docs


def install_kube_router(progs: dict, log=print) -> None:
    docs = kube_router_manifest(progs)
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    log(f"kube-router {progs['kube-router'].version} applied as the kind cluster's CNI")


def nodes_not_ready() -> dict[str, str]:
    """Each node not Ready, with its Ready condition's message (empty: every node Ready)."""
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    if not nodes:
        return {"(none)": "no node registered yet"}
    waiting = {}
    for node in nodes:
        ready = next((c for c in node["status"].get("conditions", []) if c["type"] == "Ready"), {})
        if ready.get("status") != "True":
            waiting[node["metadata"]["name"]] = ready.get("message", "no Ready condition yet")
    return waiting


def wait_nodes_ready(log=print) -> None:
    """Every node Ready (the CNI is up on each); a timeout names each node not Ready and why."""
    from conformance.waiting import WaitTimeout, wait_for

    try:
        wait_for(f"every node of kind cluster {NAME} to be Ready", nodes_not_ready, until=lambda w: not w,
                 timeout=TIMEOUTS["nodes-ready"], interval=3)
    except WaitTimeout as exc:
        raise HarnessError(str(exc), fix=f"podman exec {NAME}-control-plane journalctl -u kubelet | tail") from None
    log(f"kind cluster {NAME}: every node Ready; kubeconfig {KUBECONFIG}")


def down(log=print) -> None:
    """Delete the kind cluster and its network; the node image and the cache stay."""
    progs = build.programs()
    if progs["kind"].built and exists(progs):
        _run([_kind(progs), "delete", "cluster", f"--name={NAME}", f"--kubeconfig={KUBECONFIG}"],
             TIMEOUTS["delete"], "kind delete cluster")
        log(f"kind cluster {NAME} deleted")
    # A create that failed before its containers existed leaves their /var volumes behind.
    # kind labels each node's volume with the node's name.
    listing = json.loads(_run(["podman", "volume", "ls", "--format=json"], TIMEOUTS["podman"],
                              "listing podman volumes").stdout or "[]")
    volumes = [v["Name"] for v in listing if any(k.startswith(f"{NAME}-") for k in (v.get("Labels") or {}))]
    if volumes:
        _run(["podman", "volume", "rm", "--force", *volumes], TIMEOUTS["podman"], "removing the kind volumes")
    if _run(["podman", "network", "exists", NETWORK], TIMEOUTS["podman"], "podman", check=False).returncode == 0:
        _run(["podman", "network", "rm", NETWORK], TIMEOUTS["podman"], "removing the kind network")
    if MODULES_MADE.exists():
        if MODULES.is_dir() and not any(MODULES.iterdir()):
            MODULES.rmdir()
        MODULES_MADE.unlink()
    # The kubeconfigs, install record and configuration of the cluster just deleted.
    shutil.rmtree(STATE, ignore_errors=True)


def status() -> dict:
    proc = _run(["podman", "ps", "--all", "--filter", f"label={CLUSTER_LABEL}={NAME}",
                 "--format", "{{.Names}} {{.Status}}"], TIMEOUTS["podman"], "podman ps", check=False)
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.strip())
