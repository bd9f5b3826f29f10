"""The node's "LAN" and the outside host that stands for a machine on it.

The LAN is a bridge apart from the pod network; the node holds its address there and
LoadBalancer addresses get announced on it. The outside host is a network namespace with one
leg on that bridge, so an answer seen from it depends on the platform's own announcements,
not on the node's NAT.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from conformance.cluster.errors import HarnessError

LAN_BRIDGE = "pcf-lan"
CNI_BRIDGE = "pcf-cni0"
OUTSIDE_NETNS = "pcf-outside"
OUTSIDE_VETH = "pcf-out0"
NODE_NAME = "pcf-node"
NODE_IPV4, NODE_IPV6 = "192.168.77.2", "fd00:77::2"
OUTSIDE_IPV4, OUTSIDE_IPV6 = "192.168.77.100", "fd00:77::100"
# The outside host's name, answered by the LAN resolver (the upstream of the cluster DNS).
OUTSIDE_NAME = "outside.pcf.test"
LAN_PREFIX4, LAN_PREFIX6 = 24, 64
POD_CIDRS = ("10.244.0.0/16", "fd00:10:244::/56")
NODE_POD_CIDRS = ("10.244.0.0/24", "fd00:10:244::/64")
SERVICE_CIDRS = ("10.96.0.0/16", "fd00:10:96::/112")
KUBERNETES_SERVICE_IPS = ("10.96.0.1", "fd00:10:96::1")
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"

# Forwarding is what lets the node route between pods, Services and the LAN; the previous
# values are kept so cluster-down puts the machine back as it was.
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/ipv6/conf/all/forwarding": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/bridge/bridge-nf-call-ip6tables": "1",
}

CMD_TIMEOUT_S = 20


def sh(*argv: str, check: bool = True, netns: str | None = None, timeout: float = CMD_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run one host networking command (ip, iptables, nft, ipset) with a timeout."""
    full = (["ip", "netns", "exec", netns] if netns else []) + list(argv)
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise HarnessError(f"{argv[0]} is not installed", fix="run `nox -s cluster`, which installs the host packages") from None
    if check and proc.returncode != 0:
        raise HarnessError(f"`{' '.join(full)}` failed: {proc.stderr.strip()}")
    return proc


def link_exists(name: str) -> bool:
    return sh("ip", "link", "show", name, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def read_sysctl(key: str) -> str | None:
    path = Path("/proc/sys") / key
    return path.read_text().strip() if path.exists() else None


def write_sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    try:
        path.write_text(value)
    except OSError as exc:
        raise HarnessError(f"cannot set {key.replace('/', '.')}={value}: {exc}",
                           fix="run as root on a machine that allows it") from None


def up() -> dict[str, str]:
    """Create the LAN and the outside host; return the sysctl values found before."""
    before = {k: v for k in SYSCTLS if (v := read_sysctl(k)) is not None}
    for key, value in SYSCTLS.items():
        if key in before:
            write_sysctl(key, value)
    if not link_exists(LAN_BRIDGE):
        sh("ip", "link", "add", LAN_BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{NODE_IPV4}/{LAN_PREFIX4}", "dev", LAN_BRIDGE)
        sh("ip", "-6", "addr", "add", f"{NODE_IPV6}/{LAN_PREFIX6}", "dev", LAN_BRIDGE, "nodad")
        sh("ip", "link", "set", LAN_BRIDGE, "up")
    if not netns_exists(OUTSIDE_NETNS):
        sh("ip", "netns", "add", OUTSIDE_NETNS)
    if not link_exists(OUTSIDE_VETH):
        sh("ip", "link", "add", OUTSIDE_VETH, "type", "veth", "peer", "name", "eth0", "netns", OUTSIDE_NETNS)
        sh("ip", "link", "set", OUTSIDE_VETH, "master", LAN_BRIDGE, "up")
        sh("ip", "link", "set", "lo", "up", netns=OUTSIDE_NETNS)
        sh("ip", "addr", "add", f"{OUTSIDE_IPV4}/{LAN_PREFIX4}", "dev", "eth0", netns=OUTSIDE_NETNS)
        sh("ip", "-6", "addr", "add", f"{OUTSIDE_IPV6}/{LAN_PREFIX6}", "dev", "eth0", "nodad", netns=OUTSIDE_NETNS)
        sh("ip", "link", "set", "eth0", "up", netns=OUTSIDE_NETNS)
    outside_routes()
    return before


def outside_routes() -> list[str]:
    """Route the pod network from the outside host through the node, as a LAN router would where
    pods are routed natively; returns the routes set. Without it the outside host cannot answer a
    pod (the node does not masquerade), so pods could reach nothing outside the cluster."""
    routes = [(POD_CIDRS[0], NODE_IPV4), (POD_CIDRS[1], NODE_IPV6)]
    for cidr, via in routes:
        sh("ip", "route", "replace", cidr, "via", via, netns=OUTSIDE_NETNS)
    return [f"{cidr} via {via}" for cidr, via in routes]


def down(sysctls_before: dict[str, str]) -> None:
    """Remove every interface and namespace the cluster made; restore the sysctls."""
    if netns_exists(OUTSIDE_NETNS):
        sh("ip", "netns", "delete", OUTSIDE_NETNS, check=False)
    for link in (OUTSIDE_VETH, LAN_BRIDGE, CNI_BRIDGE, "kube-ipvs0", "kube-dummy-if"):
        if link_exists(link):
            sh("ip", "link", "delete", link, check=False)
    # Pod sandboxes' namespaces, left if a pod outlived its runtime.
    for ns in Path("/run/netns").glob("cni-*") if Path("/run/netns").exists() else ():
        sh("ip", "netns", "delete", ns.name, check=False)
    for key, value in sysctls_before.items():
        write_sysctl(key, value)


@dataclass(frozen=True)
class Ruleset:
    """The host's packet-filter state, compared before and after the cluster."""

    iptables: str
    ip6tables: str
    nft_tables: tuple[str, ...]
    ipsets: tuple[str, ...]


# Chains and sets the cluster's programs create; matched by prefix when cleaning up.
CLUSTER_CHAIN_PREFIXES = ("KUBE-", "CNI-", "KUBE-ROUTER-", "KUBE-NWPLCY-", "KUBE-POD-FW-", "KUBE-SRC-", "KUBE-DST-")


def _save(binary: str) -> str:
    proc = sh(binary, check=False)
    return proc.stdout if proc.returncode == 0 else ""


def ruleset() -> Ruleset:
    tables = sh("nft", "list", "tables", check=False).stdout.split("\n")
    sets = sh("ipset", "list", "-n", check=False).stdout.split()
    return Ruleset(
        iptables=_save("iptables-save"),
        ip6tables=_save("ip6tables-save"),
        nft_tables=tuple(sorted(t.strip() for t in tables if t.strip())),
        ipsets=tuple(sorted(sets)),
    )


def cluster_rules(saved: str) -> list[str]:
    """The lines of an iptables-save dump that belong to the cluster (its chains and jumps)."""
    out = []
    for line in saved.splitlines():
        if line.startswith(("#", "*", "COMMIT")):
            continue
        if any(p in line for p in CLUSTER_CHAIN_PREFIXES) or "kubernetes" in line.lower() or "kube-router" in line:
            out.append(line)
    return out


def _restore_without_cluster(save_bin: str, restore_bin: str) -> None:
    saved = _save(save_bin)
    if not cluster_rules(saved):
        return
    kept = [line for line in saved.splitlines() if line not in set(cluster_rules(saved))]
    subprocess.run([restore_bin], input="\n".join(kept) + "\n", text=True,
                   capture_output=True, timeout=CMD_TIMEOUT_S, check=False)


def clean_rules(baseline: Ruleset | None) -> None:
    """Drop the cluster's iptables chains and rules, its ipsets, and nft tables it added."""
    _restore_without_cluster("iptables-save", "iptables-restore")
    _restore_without_cluster("ip6tables-save", "ip6tables-restore")
    for name in sh("ipset", "list", "-n", check=False).stdout.split():
        if not baseline or name not in baseline.ipsets:
            sh("ipset", "destroy", name, check=False)
    if baseline is not None:
        for table in ruleset().nft_tables:
            if table not in baseline.nft_tables:
                sh("nft", "delete", *table.split(), check=False)
