"""The probe parsers, fed outputs captured from a real cluster (tests/data, see its README).

Each test replays one captured exec (stdout, stderr and the exec channel's status document) or
one API reply into the probe function that parsed it live, and checks what it made of it. Only
the text is replayed: the command a probe sends is not compared, so a probe may change how it
asks and these tests still judge how it reads the tools' answers. Expected values come from
the facts recorded with the captures (tests/data/facts.json), never from the parser itself.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes import client as k8s

from conformance import evidence, pods, waiting
from conformance.probes import control_plane as cp, dns, net, runtime

DATA = Path(__file__).resolve().parents[1] / "data"
FACTS = json.loads((DATA / "facts.json").read_text())
NS, DOMAIN, FQDN = FACTS["namespace"], FACTS["domain"], FACTS["echo_fqdn"]
ECHO_V4 = next(ip for ip in FACTS["echo_cluster_ips"] if ":" not in ip)
ECHO_V6 = next(ip for ip in FACTS["echo_cluster_ips"] if ":" in ip)
POD_V4 = next(ip for ip in FACTS["echo_pod_ips"] if ":" not in ip)
NO_SUCH = f"no-such.{NS}.svc.{DOMAIN}"
API = k8s.ApiClient()  # never sends: every exec and reply below is replayed


def captured(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


class Replay:
    """An exec stream that gives back one captured exec, as the WebSocket client would."""

    def __init__(self, doc: dict):
        self.pending = {"stdout": doc["stdout"], "stderr": doc["stderr"]}
        self.status = doc["status"]
        self.open = True

    def is_open(self) -> bool:
        return self.open

    def update(self, timeout: float = 0) -> None:
        self.open = False

    def _peek(self, channel: str) -> bool:
        return bool(self.pending[channel])

    def _read(self, channel: str) -> str:
        text, self.pending[channel] = self.pending[channel], ""
        return text

    def peek_stdout(self) -> bool:
        return self._peek("stdout")

    def peek_stderr(self) -> bool:
        return self._peek("stderr")

    def read_stdout(self) -> str:
        return self._read("stdout")

    def read_stderr(self) -> str:
        return self._read("stderr")

    def read_channel(self, channel: int) -> str | None:
        return self.status if channel == 3 else ""

    def close(self) -> None:
        self.open = False


@pytest.fixture
def replay(monkeypatch):
    """`replay(name)` makes the next exec of any probe answer with the capture `name`, and
    gives back the pod it was captured in."""
    def use(name: str) -> pods.PodView:
        doc = captured(name)
        monkeypatch.setattr(pods, "stream", lambda *a, **kw: Replay(doc))
        namespace, pod = doc["pod"].split("/")
        return pods.PodView(namespace, pod, "pcf-node", "Running", True, (), 0, "")
    return use


# --- exec exit codes -------------------------------------------------------------------------

@pytest.mark.parametrize("name, code, stdout", [
    ("exec/exit-0", 0, "65534\n"),
    ("exec/exit-7", 7, "65534\n"),
])
def test_exec_reads_the_exit_code_from_the_status_document(replay, name, code, stdout):
    pod = replay(name)
    res = pods.exec_in(API, pod.namespace, pod.name, ["sh"])
    assert (res.exit_code, res.stdout) == (code, stdout)


def test_exec_of_a_missing_command_has_no_exit_code_but_says_why(replay):
    pod = replay("exec/no-such-command")
    res = pods.exec_in(API, pod.namespace, pod.name, ["pcf-no-such-command"])
    assert res.exit_code == -1
    assert "pcf-no-such-command" in captured("exec/no-such-command")["status"]


# --- glibc: getent ---------------------------------------------------------------------------

def _getent(replay, name: str, family: str, asked: str) -> dns.Lookup:
    return dns.getent(API, replay(name), asked, family)


def test_getent_reads_the_address_and_canonical_name(replay):
    found = _getent(replay, "dns/getent-ahostsv4-service", "4", FQDN)
    assert (found.status, found.addresses, found.canonical, found.error) == ("ok", (ECHO_V4,), FQDN, None)


def test_getent_ahosts_reads_both_families_once_each(replay):
    found = _getent(replay, "dns/getent-ahosts-service", "any", FQDN)
    assert (found.status, sorted(found.addresses)) == ("ok", sorted(FACTS["echo_cluster_ips"]))


def test_getent_short_name_shows_the_search_path_expansion(replay):
    found = _getent(replay, "dns/getent-ahostsv4-short-name", "4", "echo")
    assert (found.status, found.addresses, found.canonical) == ("ok", (ECHO_V4,), FQDN)


def test_getent_no_such_name_is_notfound(replay):
    found = _getent(replay, "dns/getent-ahostsv4-nxdomain", "4", NO_SUCH)
    assert (found.status, found.addresses) == ("notfound", ())


def test_getent_without_a_reachable_server_is_notfound_like_a_missing_name(replay):
    # getent exits 2 whether the name does not exist or no server answered: it cannot tell
    # them apart, which is why the response code is asked of dig.
    found = _getent(replay, "dns/getent-ahostsv4-egress-denied", "4", FQDN)
    assert (found.status, found.addresses, found.canonical) == ("notfound", (), None)


# --- glibc: dig ------------------------------------------------------------------------------

def _dig(replay, name: str, asked: str, qtype: str) -> dns.Lookup:
    return dns.dig(API, replay(name), asked, qtype)


def test_dig_reads_a_and_aaaa_answers_and_the_query_time(replay):
    a = _dig(replay, "dns/dig-a-service", FQDN, "A")
    assert (a.status, a.addresses, a.records, a.error) == ("ok", (ECHO_V4,), (), None)
    assert f"Query time: {a.elapsed_ms:.0f} msec" in a.raw
    aaaa = _dig(replay, "dns/dig-aaaa-service", FQDN, "AAAA")
    assert (aaaa.status, aaaa.addresses) == ("ok", (ECHO_V6,))


def test_dig_reads_srv_rdata(replay):
    found = _dig(replay, "dns/dig-srv-named-port", f"_http._tcp.{FQDN}", "SRV")
    assert found.status == "ok"
    assert [(r.split()[2], r.split()[3]) for r in found.records] == [("8080", f"{FQDN}.")]


def test_dig_reads_ptr_records(replay):
    found = _dig(replay, "dns/dig-ptr-pod", POD_V4, "PTR")
    assert found.status == "ok" and found.records
    assert all(r.startswith(POD_V4.replace(".", "-") + ".") and r.endswith(f".{NS}.svc.{DOMAIN}.")
               for r in found.records), found.records


def test_dig_reads_a_cname(replay):
    found = _dig(replay, "dns/dig-cname-externalname", f"alias.{NS}.svc.{DOMAIN}", "CNAME")
    assert (found.status, found.records) == ("ok", (f"{FQDN}.",))


def test_dig_nxdomain_and_nodata(replay):
    nx = _dig(replay, "dns/dig-a-nxdomain", NO_SUCH, "A")
    assert (nx.status, nx.addresses, nx.error) == ("nxdomain", (), None)
    nodata = _dig(replay, "dns/dig-aaaa-nodata", FACTS["pod_record"], "AAAA")
    assert (nodata.status, nodata.addresses, nodata.error) == ("nodata", (), None)


def test_dig_names_another_response_code(replay, monkeypatch):
    # A server that answers with another code is asked again within dns_answer: keep that short.
    monkeypatch.setattr(waiting, "_scale", 0.01)
    found = _dig(replay, "dns/dig-a-refused-upstream", "platform-conformance.example.", "A")
    rcode = dns._STATUS.search(found.raw).group(1)
    assert rcode not in ("NOERROR", "NXDOMAIN")
    assert found.status == "error"
    assert found.error.startswith(f"DNS response code {rcode}; asked ")


def test_dig_with_no_server_reachable_is_a_timeout_naming_it(replay):
    # The policy rejects (kube-router answers with an ICMP error), so dig reports refusals first.
    found = _dig(replay, "dns/dig-a-egress-denied", FQDN, "A")
    assert (found.status, found.addresses) == ("timeout", ())
    assert "no servers could be reached" in found.error


# --- musl and Go: the project's resolvers ----------------------------------------------------

@pytest.mark.parametrize("lookup", [dns.musl, dns.go])
def test_resolver_json_line_of_an_answer(replay, lookup):
    [found] = lookup(API, replay(f"dns/{lookup.__name__}-service"), FQDN)
    assert (found.status, found.addresses, found.qtype, found.error) == ("ok", (ECHO_V4,), "A", None)
    assert found.elapsed_ms > 0


@pytest.mark.parametrize("lookup", [dns.musl, dns.go])
def test_resolver_json_line_of_no_such_name(replay, lookup):
    [found] = lookup(API, replay(f"dns/{lookup.__name__}-nxdomain"), NO_SUCH)
    assert (found.status, found.addresses) == ("nxdomain", ())


@pytest.mark.parametrize("lookup, error", [(dns.musl, "EAI_AGAIN: Try again"),
                                           (dns.go, f"lookup {FQDN}: i/o timeout")])
def test_resolver_json_line_without_a_reachable_server_keeps_its_error(replay, lookup, error):
    [found] = lookup(API, replay(f"dns/{lookup.__name__}-egress-denied"), FQDN)
    assert (found.status, found.addresses) == ("error", ())
    # the program's own error first, then what the reach check saw
    assert found.error.startswith(f"{error}; no DNS server answered from "), found.error
    assert found.elapsed_ms >= 5000  # each program's own 5 s limit per lookup


def test_go_reads_srv_records(replay):
    [found] = dns.go(API, replay("dns/go-srv-named-port"), f"_http._tcp.{FQDN}", "SRV")
    assert (found.status, [(r.split()[2], r.split()[3].rstrip(".")) for r in found.records]) == ("ok", [("8080", FQDN)])


# --- percentiles -----------------------------------------------------------------------------

@pytest.mark.parametrize("lookup", [dns.musl, dns.go])
def test_percentiles_of_captured_lookup_times_are_nearest_rank(replay, lookup):
    found = lookup(API, replay(f"dns/{lookup.__name__}-latency-20"), FQDN, count=20)
    samples = [lk.elapsed_ms for lk in found]
    assert len(samples) == 20 and {lk.status for lk in found} == {"ok"}
    ordered = sorted(samples)
    # Nearest rank over 20 samples: p50 is the 10th smallest, p95 the 19th, p100 the largest.
    assert (dns.percentile(samples, 50), dns.percentile(samples, 95), dns.percentile(samples, 100)) == \
        (ordered[9], ordered[18], ordered[19])
    assert dns.percentile(samples, 0) == ordered[0]


def test_percentile_of_no_samples_is_nan():
    assert math.isnan(dns.percentile([], 50))


# --- HTTP replies ----------------------------------------------------------------------------

def test_http_reply_through_nc_reads_status_and_body(replay):
    found = net.http_get(API, replay("http/nc-echo-service"), ECHO_V4, 8080)
    assert (found.status, found.body.strip(), found.error) == (200, FACTS["echo_pod"], None)


@pytest.mark.parametrize("name", ["http/nc-refused-port", "http/nc-egress-denied"])
def test_http_refused_names_the_refusal(replay, name):
    # A closed port, and a NetworkPolicy that denies egress (kube-router rejects, not drops).
    found = net.http_get(API, replay(name), POD_V4, 8080)
    assert (found.status, found.blocked, found.error) == (
        None, True, f"can't connect to remote host ({POD_V4}): Connection refused")


def test_http_to_an_address_nobody_has_is_a_timeout(replay):
    found = net.http_get(API, replay("http/nc-no-such-pod"), "10.244.0.250", 8080)
    assert (found.status, found.error) == (None, "timed out")


def test_parse_http_on_the_raw_reply_and_on_no_reply():
    raw = captured("http/nc-echo-service")["stdout"]
    assert pods.parse_http(raw) == (200, raw.partition("\r\n\r\n")[2])
    assert pods.parse_http("") == (None, "")


# --- health endpoints ------------------------------------------------------------------------

class Answering(k8s.ApiClient):
    """An API client that answers every request with one captured reply."""

    def __init__(self, status: int, body: str):
        super().__init__()
        self.reply = SimpleNamespace(status=status, data=body.encode(), read=lambda: None)

    def call_api(self, *args, **kwargs):
        return self.reply


@pytest.mark.parametrize("endpoint", ["/livez", "/readyz"])
def test_health_lines_of_a_healthy_server(endpoint):
    doc = captured(f"health/{endpoint.strip('/')}-verbose")
    found = cp.health(Answering(doc["status"], doc["body"]), endpoint)
    names = [c.name for c in found.checks]
    assert (found.healthy, found.failing) == (True, ())
    assert {"ping", "etcd", "log"} <= set(names) and len(names) == doc["body"].count("[+]")
    assert all(c.detail == "ok" for c in found.checks)


def test_health_lines_of_a_starting_server_name_each_failing_check():
    doc = captured("health/readyz-verbose-starting")
    found = cp.health(Answering(doc["status"], doc["body"]), "/readyz")
    failing = {c.name: c.detail for c in found.failing}
    assert (found.healthy, found.http_status) == (False, 500)
    assert len(failing) == doc["body"].count("[-]") and set(failing.values()) == {"failed: reason withheld"}
    assert {"etcd", "informer-sync", "poststarthook/start-apiextensions-controllers"} <= set(failing)
    assert "readyz check failed" not in {c.name for c in found.checks}  # the summary line is no check


@pytest.mark.parametrize("endpoint, failing", [("/readyz", ["etcd", "etcd-readiness"]), ("/livez", ["etcd"])])
def test_health_lines_with_etcd_down(endpoint, failing):
    doc = captured(f"health/{endpoint.strip('/')}-verbose-etcd-down")
    found = cp.health(Answering(doc["status"], doc["body"]), endpoint)
    assert ([c.name for c in found.failing], found.http_status, found.healthy) == (failing, 500, False)
    assert len(found.checks) == doc["body"].count("[+]") + len(failing)


# --- versions and nodes ----------------------------------------------------------------------

def _nodes(monkeypatch) -> dict[str, cp.NodeFacts]:
    listed = API.deserialize(captured("versions/nodes")["stdout"], "V1NodeList", "application/json")
    monkeypatch.setattr(k8s.CoreV1Api, "list_node", lambda self, **kw: listed)
    return cp.nodes(API)


def test_node_facts_from_a_real_node(monkeypatch):
    [node] = _nodes(monkeypatch).values()
    raw = json.loads(captured("versions/nodes")["stdout"])["items"][0]
    assert (node.name, node.ready, node.unschedulable, node.problems) == ("pcf-node", "True", False, ())
    assert (node.kubelet_version, node.runtime) == (raw["status"]["nodeInfo"]["kubeletVersion"],
                                                    raw["status"]["nodeInfo"]["containerRuntimeVersion"])
    assert set(node.internal_ips) == {a["address"] for a in raw["status"]["addresses"] if a["type"] == "InternalIP"}


def test_kubelet_skew_and_runtime_version_of_the_real_cluster(monkeypatch):
    server = json.loads(captured("versions/server-version")["stdout"])["gitVersion"]
    [node] = _nodes(monkeypatch).values()
    assert cp.minor(server) == cp.minor(node.kubelet_version)
    assert cp.kubelet_skew(server, node.kubelet_version) == 0
    name, version = node.runtime_name, node.runtime_version
    assert runtime.same_runtime(name, "containerd")
    assert runtime.version_tuple(version)[:2] >= (2, 0) and runtime.at_least(version, "2.0")
    assert not runtime.at_least(version, f"{runtime.version_tuple(version)[0] + 1}")


def test_version_parsers_refuse_what_is_not_a_version():
    with pytest.raises(ValueError, match="not a Kubernetes version"):
        cp.minor("containerd://2.2.9")
    with pytest.raises(ValueError, match="does not start with a version number"):
        runtime.version_tuple("containerd://2.2.9")


# --- pod states ------------------------------------------------------------------------------

def _pod(name: str) -> k8s.V1Pod:
    return API.deserialize(captured(f"pods/{name}")["stdout"], "V1Pod", "application/json")


def test_pod_view_of_a_ready_pod():
    view = pods.PodView.of(_pod("ready"))
    assert (view.ready, view.phase, view.restarts, view.why) == (True, "Running", 0, "")
    assert set(view.ips) == {p["ip"] for p in json.loads(captured("pods/ready")["stdout"])["status"]["podIPs"]}


def test_pod_view_and_description_of_a_crashing_container():
    pod = _pod("crashing")
    view = pods.PodView.of(pod)
    assert (view.restarts >= 1, view.ready) == (True, False)
    assert "container echo waiting: CrashLoopBackOff: back-off" in view.why, view.why
    text = evidence.describe_pod(pod)
    assert "last exit 1 (Error)" in text and f"restarts={view.restarts}" in text, text


def test_pod_view_names_a_terminated_container_and_not_a_waiting_one():
    pod = _pod("crashing")
    assert pods.PodView.of(pod).terminated == ()
    status = pod.status.container_statuses[0]
    status.state = status.last_state
    view = pods.PodView.of(pod)
    assert view.terminated == ("echo",) and "container echo terminated: Error (exit 1)" in view.why, view


def _view(restarts: int, terminated: tuple[str, ...] = ()) -> pods.PodView:
    return pods.PodView("ns", "crasher", "pcf-node", "Running", False, (), restarts, "", (), terminated)


def _previous_run(monkeypatch, settled: list[int], reads: list, after: list[pods.PodView]) -> pods.PreviousRun:
    """previous_run against a pod whose caught-up views (by restart count), log reads and views
    re-read after each read are given in order."""
    monkeypatch.setattr(pods, "wait_pod", lambda *a, **kw: _view(settled.pop(0)))
    monkeypatch.setattr(pods, "view", lambda *a: after.pop(0))

    def logs(*a, previous):
        assert previous
        got = reads.pop(0)
        if isinstance(got, Exception):
            raise got
        return got
    monkeypatch.setattr(pods, "logs", logs)
    return pods.previous_run(None, "ns", "crasher")


def _gone() -> k8s.ApiException:
    gone = k8s.ApiException(status=400, reason="Bad Request")
    gone.body = "unable to retrieve container logs for cri-o://1"
    return gone


def test_previous_run_reads_again_when_the_status_moved_on_during_the_read(monkeypatch):
    run = _previous_run(monkeypatch, [1, 2], [_gone(), "pcf-crasher started\n"], [_view(2, ("crash",))])
    assert (run.log, run.error, run.pod.restarts) == ("pcf-crasher started\n", None, 2)


def test_previous_run_fails_when_the_status_held_still_and_the_log_is_gone(monkeypatch):
    run = _previous_run(monkeypatch, [1, 2], [_gone(), "never read"], [_view(1)])
    assert (run.log, run.error, run.pod.restarts) == (None, "unable to retrieve container logs for cri-o://1", 1)


def test_pod_view_of_an_image_that_cannot_be_pulled_names_the_pull():
    view = pods.PodView.of(_pod("image-pull-failing"))
    assert not view.ready
    assert "ErrImagePull" in view.why or "ImagePullBackOff" in view.why, view.why
    assert "no-such-image" in view.why
