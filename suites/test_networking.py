"""Pod networking, Services and NetworkPolicy.

Traffic goes to addresses, not names, so a DNS fault cannot fail a networking promise. Clients
are the shared probe pods (one per schedulable node) unless a policy must select them; servers
are the shared echo pods, or a test's own where a policy changes what reaches them. agnhost
answers /hostname with its pod's name, which shows which backend a Service picked.
"""
from __future__ import annotations

import pytest
from kubernetes import client as k8s

from conformance import pods
from conformance.probes import coverage, dns, net, outside
from conformance.probes.workloads import ECHO_PORT, apply
from conformance.waiting import WaitTimeout, wait_for


OTHER_PORT = 8081  # the test server's second listener, named by no allow rule
# How long a policy may take to be enforced. The named table has no entry of its own for it
# yet; EndpointSlice propagation is the nearest limit (a policy is programmed from the same
# watch events within seconds).
POLICY_TIMEOUT = "policy_enforced"


def _ready(probes) -> None:
    assert probes.missing() == [], "an expected node has no ready probe or echo pod"


def _covered(probes, asked, *kinds: str) -> None:
    """Every node the promise must be proven from was asked; a node left out fails by name."""
    covered = probes.coverage(asked, *kinds)
    assert covered.gaps == (), str(covered)


def _v4(ips) -> str:
    return next(ip for ip in ips if ":" not in ip)


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/pod-to-pod/same-node")
def test_pod_reaches_pod_on_same_node(kube, probes):
    """A pod MUST reach another pod on the same node at its pod IP."""
    pairs = [(probes.client_on(n), probes.server_on(n)) for n in probes.nodes]
    replies = {c.where: net.http_get(kube, c, _v4(s.ips), ECHO_PORT) for c, s in pairs}
    _covered(probes, [c for c, _ in pairs], "probe", "echo")
    got = {w: (r.status, r.body.strip()) for w, r in replies.items()}
    assert got == {c.where: (200, s.name) for c, s in pairs}, "\n".join(map(str, replies.values()))


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/pod-to-pod/cross-node")
def test_pod_reaches_pod_on_another_node(kube, probes):
    """A pod MUST reach a pod on every other node at its pod IP.

    Skipped only where the profile and the cluster both have a single node: with two or more
    expected, a node that cannot take part fails by name.
    """
    expected = probes.expected("probe", "echo")
    if len(expected.nodes) < 2:
        pytest.skip(f"one node expected ({', '.join(expected.nodes) or '-'}; cluster.nodes: "
                    f"{list(probes.profile_nodes)}): no other node to reach")
    pairs = [(probes.client_on(a), probes.server_on(b)) for a in probes.nodes for b in probes.nodes if a != b]
    replies = {f"{c.where} -> {s.where}": net.http_get(kube, c, _v4(s.ips), ECHO_PORT) for c, s in pairs}
    # A node counts once it has both sent to and answered every other node.
    _covered(probes, {c.node for c, _ in pairs} & {s.node for _, s in pairs}, "probe", "echo")
    got = {w: r.status for w, r in replies.items()}
    assert got == {w: 200 for w in replies}, "\n".join(map(str, replies.values()))


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/service/cluster-ip")
def test_pod_reaches_service_cluster_ip(kube, probes):
    """A pod MUST reach a Service at its ClusterIP and be answered by one of the Service's pods."""
    ip = probes.ipv4("echo")
    backends = {s.name for s in probes.servers}
    clients = probes.ready_clients()
    replies = {c.where: net.http_get(kube, c, ip, ECHO_PORT) for c in clients}
    _covered(probes, clients, "probe")
    got = {w: (r.status, r.body.strip() in backends) for w, r in replies.items()}
    assert got == {w: (200, True) for w in replies}, f"backends {sorted(backends)}\n" + "\n".join(
        map(str, replies.values()))


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/service/nodeport-from-outside")
@pytest.mark.covers("networking/nodeports-from-outside")
def test_nodeport_answers_from_outside_host(kube, probes, profile):
    """A NodePort Service MUST answer on every node address, in each family, from the outside host.

    Checked where the profile says nodes are reachable (components.networking.nodeports_reachable).

    The client runs where the profile's outside origin is (a LAN namespace locally, the runner in
    production), since a NodePort is a promise to clients outside the cluster.
    """
    if not profile.components.networking.nodeports_reachable:
        pytest.skip(f"profile {profile.name} does not promise reachable NodePorts "
                    "(components.networking.nodeports_reachable: false)")
    _ready(probes)
    port = probes.services["echo-nodeport"].node_port
    node_ips = {n.metadata.name: [a.address for a in n.status.addresses if a.type == "InternalIP"]
                for n in k8s.CoreV1Api(kube).list_node(_request_timeout=(5, 30)).items}
    covered = coverage.for_facts(profile.cluster.nodes, node_ips).coverage(n for n, ips in node_ips.items() if ips)
    assert covered.gaps == (), f"{covered}\nInternalIPs: {node_ips}"
    urls = [f"http://[{ip}]:{port}/hostname" if ":" in ip else f"http://{ip}:{port}/hostname"
            for ips in node_ips.values() for ip in ips]
    backends = {s.name for s in probes.servers}

    def ask() -> dict:
        return {u: outside.get_from(profile.outside.origin, profile.outside.netns, u) for u in urls}

    def answered(replies: dict) -> bool:
        return all(r.status == 200 and r.body.strip() in backends for r in replies.values())

    # The Service may be newer than the proxy's last sync: give it that long, then judge.
    try:
        replies = wait_for(f"NodePort {port} to answer on {', '.join(urls)}", ask, until=answered,
                           timeout="service_programmed", interval=1)
    except WaitTimeout as exc:
        replies = exc.last_state if isinstance(exc.last_state, dict) else ask()
    got = {u: (r.status, r.body.strip() in backends) for u, r in replies.items()}
    assert got == {u: (200, True) for u in urls}, "\n".join(map(str, replies.values()))


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/service/endpoints-follow-readiness")
def test_endpoints_follow_pod_readiness(kube, profile, namespace):
    """A Service's endpoint for a pod MUST be ready exactly while the pod is ready.

    The pod's readiness is switched on and then off from inside it, and the EndpointSlice must follow both ways.
    """
    apply(kube, namespace, "readiness", profile.images, NAME="flip")
    pods.wait_pod(kube, namespace, "flip", until=lambda v: v.phase == "Running", state="Running")
    discovery = k8s.DiscoveryV1Api(kube)

    def endpoint_ready() -> tuple:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=flip", _request_timeout=(5, 15)).items
        return tuple((tuple(e.addresses), bool(e.conditions and e.conditions.ready)) for s in slices
                     for e in s.endpoints or [])

    for wanted, content in ((True, "yes"), (False, "no")):
        result = pods.exec_in(kube, namespace, "flip", ["sh", "-c", f"echo {content} > /tmp/ready"])
        assert result.exit_code == 0, result
        wait_for(f"the endpoint of pod {namespace}/flip in Service flip to be ready={wanted}", endpoint_ready,
                 until=lambda eps, w=wanted: len(eps) == 1 and eps[0][1] is w, timeout="endpoints_ready",
                 interval=0.5)


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/dual-stack/both-families")
@pytest.mark.covers("cluster/dual-stack")
def test_pod_reaches_pods_and_services_over_ipv4_and_ipv6(kube, probes, profile):
    """On a dual-stack platform, pods and Services MUST get IPv4 and IPv6 addresses and be reachable over each."""
    if not profile.cluster.dual_stack:
        pytest.skip(f"profile {profile.name} does not claim dual-stack (cluster.dual_stack: false)")
    _ready(probes)
    families = {p.where: sorted({net.family(ip) for ip in p.ips}) for p in probes.clients + probes.servers}
    service = sorted({net.family(ip) for ip in probes.services["echo"].cluster_ips})
    assert (families, service) == ({w: ["IPv4", "IPv6"] for w in families}, ["IPv4", "IPv6"]), \
        f"Service echo: {probes.services['echo'].cluster_ips}"
    replies = []
    for node in probes.nodes:
        client, server = probes.client_on(node), probes.server_on(node)
        replies += [net.http_get(kube, client, ip, ECHO_PORT) for ip in server.ips + probes.services["echo"].cluster_ips]
    _covered(probes, probes.nodes, "probe", "echo")
    assert {r.target: r.status for r in replies} == {r.target: 200 for r in replies}, "\n".join(map(str, replies))


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/egress/world")
@pytest.mark.covers("networking/egress-world")
def test_pod_reaches_allowed_world_target(kube, probes, profile):
    """A pod MUST reach the target outside the cluster that the profile names as allowed."""
    target = profile.components.networking.world_target
    if not target:
        pytest.skip(f"profile {profile.name} names no outside target pods may reach "
                    "(components.networking.world_target)")
    host, _, port = target.rpartition(":")
    clients = probes.ready_clients()
    replies = [net.http_get(kube, c, host.strip("[]"), int(port), path="/") for c in clients]
    _covered(probes, clients, "probe")
    assert {r.where: r.answered for r in replies} == {r.where: True for r in replies}, "\n".join(map(str, replies))


# --- NetworkPolicy ---------------------------------------------------------------------------

def _server(kube, profile, namespace: str, name: str = "guarded") -> pods.PodView:
    apply(kube, namespace, "server", profile.images, NAME=name)
    return pods.wait_pod(kube, namespace, name)


def _client(kube, profile, namespace: str, name: str, role: str) -> pods.PodView:
    apply(kube, namespace, "client", profile.images, NAME=name, ROLE=role)
    return pods.wait_pod(kube, namespace, name)


def _until_reply(kube, client, ip: str, port: int, answered: bool, why: str) -> net.HttpReply:
    """Wait until the client's GET is answered (or not), as a policy takes effect."""
    state = "answered" if answered else "blocked"
    return wait_for(f"GET {ip}:{port} from {client.where} to be {state} ({why})",
                    lambda: net.http_get(kube, client, ip, port), until=lambda r: r.answered is answered,
                    timeout=POLICY_TIMEOUT, interval=0.5)


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/policy/default-deny-ingress")
def test_default_deny_ingress_blocks_while_unaffected_client_still_connects(kube, probes, profile, namespace):
    """A default-deny ingress policy MUST block connections to its namespace's pods, and only to them.

    The same client must still reach a pod the policy does not cover.

    The client connects before the policy, so the block is the policy's doing, and the shared echo
    server stays reachable, so the client and its network are not what fails.
    """
    _ready(probes)
    server = _server(kube, profile, namespace)
    client = probes.ready_clients()[0]
    ip = _v4(server.ips)
    _until_reply(kube, client, ip, ECHO_PORT, True, "before any policy")
    apply(kube, namespace, "policy-deny-ingress", profile.images)
    _until_reply(kube, client, ip, ECHO_PORT, False, f"policy default-deny-ingress in {namespace}")
    unaffected = net.http_get(kube, client, _v4(probes.server_on(client.node).ips), ECHO_PORT)
    assert unaffected.status == 200, f"a pod outside the policy's namespace became unreachable too: {unaffected}"


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/policy/allow-rule-exact")
def test_allow_rule_admits_exactly_what_it_names(kube, probes, profile, namespace):
    """Under default-deny, an allow rule MUST admit exactly the pods and port it names, and nothing else.

    The rule names pods labelled role=allowed on port 8080: another pod, or another port, stays blocked.
    """
    server = _server(kube, profile, namespace)
    allowed = _client(kube, profile, namespace, "allowed", "allowed")
    other = _client(kube, profile, namespace, "other", "other")
    ip = _v4(server.ips)
    # Both ports answer both clients before any policy, so every block below is the policy's.
    for client, port in ((allowed, ECHO_PORT), (allowed, OTHER_PORT), (other, ECHO_PORT)):
        _until_reply(kube, client, ip, port, True, "before any policy")
    apply(kube, namespace, "policy-deny-ingress", profile.images)
    apply(kube, namespace, "policy-allow-role", profile.images, SERVER="guarded", ROLE="allowed")
    _until_reply(kube, other, ip, ECHO_PORT, False, "not named by the allow rule")
    _until_reply(kube, allowed, ip, OTHER_PORT, False, "port 8081 is not named by the allow rule")
    admitted = net.http_get(kube, allowed, ip, ECHO_PORT)
    assert admitted.status == 200, f"the allow rule names role=allowed on port 8080: {admitted}"


@pytest.mark.networking
@pytest.mark.writes
@pytest.mark.promise("networking/policy/egress-deny-keeps-dns")
def test_egress_deny_still_allows_dns(kube, probes, profile, namespace):
    """An egress policy that allows only DNS MUST block other connections while DNS lookups still answer."""
    _ready(probes)
    client = _client(kube, profile, namespace, "confined", "confined")
    target = _v4(probes.server_on(client.node).ips) if probes.server_on(client.node) else _v4(probes.servers[0].ips)
    _until_reply(kube, client, target, ECHO_PORT, True, "before any policy")
    apply(kube, namespace, "policy-egress-dns-only", profile.images, ROLE="confined")
    _until_reply(kube, client, target, ECHO_PORT, False, "egress-dns-only-confined")
    name = probes.fqdn("echo", profile.cluster.domain)
    lookup = dns.go(kube, client, name, "A")[0]
    assert (lookup.status, lookup.addresses) == ("ok", (probes.ipv4("echo"),)), str(lookup)
