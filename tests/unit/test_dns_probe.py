"""The DNS probe's decisions: when a lookup is asked again, when it stops, what a pod record must be."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conformance import profile as profiles, waiting
from conformance.pods import PodView
from conformance.probes import dns
from conformance.profile import ProfileError

ROOT = Path(__file__).resolve().parents[2]

POD = PodView("pcf-x-dns", "probe-a", "node-a", "Running", True, ("10.244.0.5",), 0, "")

# A Kubernetes pod's resolv.conf, as the kubelet writes it.
RESOLV_CONF = """search pcf-x-dns.svc.cluster.local svc.cluster.local cluster.local lan
nameserver 10.96.0.10
options ndots:5
"""


def lookup(status: str, addresses: tuple[str, ...] = (), error: str | None = None) -> dns.Lookup:
    return dns.Lookup("musl", "resolve-musl", "echo", "A", status, addresses, (), None, error, 1.0, POD.where, "")


def reach(status: str, error: str | None = None) -> dns.Reach:
    return dns.Reach(POD.where, ("10.96.0.10",), "cluster.local. SOA", lookup(status, error=error))


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    monkeypatch.setattr(dns, "_silent", {})
    monkeypatch.setattr(dns, "_resolv", {})
    monkeypatch.setattr(dns, "ASK_AGAIN_AFTER_S", 0.01)
    waiting.set_scale(0.02)  # dns_answer: 30 s -> 0.6 s
    yield
    waiting.set_scale(1.0)


class Attempts:
    """Answers in turn, recording the limit each attempt was given."""

    def __init__(self, *answers: dns.Lookup):
        self.answers, self.limits = list(answers), []

    def __call__(self, limit: float) -> list[dns.Lookup]:
        self.limits.append(limit)
        return [self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]]


def test_resolv_conf_gives_servers_search_list_and_the_cluster_zone():
    conf = dns.parse_resolv_conf(RESOLV_CONF)
    assert (conf.nameservers, conf.search[:2], conf.zone) == (
        ("10.96.0.10",), ("pcf-x-dns.svc.cluster.local", "svc.cluster.local"), "cluster.local.")
    assert dns.parse_resolv_conf("nameserver 192.168.1.1\n").zone == "."


@pytest.mark.parametrize(("status", "error", "answered"), [
    ("nxdomain", None, True),
    ("error", "DNS response code SERVFAIL", True),
    ("timeout", ";; connection timed out; no servers could be reached", False),
    ("error", "communications error to 10.96.0.10#53: connection refused", False),
])
def test_any_response_code_means_a_server_was_reached(status, error, answered):
    assert reach(status, error).answered is answered


def test_an_answered_lookup_is_asked_once(monkeypatch):
    monkeypatch.setattr(dns, "reach", lambda api, pod: pytest.fail("a server answered; nothing to check"))
    attempts = Attempts(lookup("ok", ("10.96.1.1",)))
    assert dns._settled(None, POD, "echo", attempts)[0].status == "ok"
    assert attempts.limits == [dns.LOOKUP_LIMIT_S]


def test_a_lost_answer_is_asked_again_while_the_server_answers(monkeypatch):
    monkeypatch.setattr(dns, "reach", lambda api, pod: reach("ok"))
    attempts = Attempts(lookup("timeout", error="no answer"), lookup("error", error="EAI_AGAIN"),
                        lookup("ok", ("10.96.1.1",)))
    assert dns._settled(None, POD, "echo", attempts)[0].addresses == ("10.96.1.1",)
    assert len(attempts.limits) == 3


def test_an_answer_that_never_comes_fails_within_dns_answer_naming_the_tries(monkeypatch):
    monkeypatch.setattr(dns, "reach", lambda api, pod: reach("ok"))
    found = dns._settled(None, POD, "echo", Attempts(lookup("timeout", error="no answer")))[0]
    assert found.status == "timeout"
    assert "timeout 'dns_answer'" in found.error and "answers cluster.local. SOA" in found.error


def test_no_server_reached_fails_at_once_and_later_lookups_get_one_short_attempt(monkeypatch):
    checks = []
    silent = reach("timeout", ";; connection timed out; no servers could be reached")

    def no_server(api, pod):
        checks.append(pod.where)
        dns._silent[pod.where] = silent
        return silent

    monkeypatch.setattr(dns, "reach", no_server)
    first = Attempts(lookup("timeout", error="no answer"))
    found = dns._settled(None, POD, "echo", first)[0]
    assert (first.limits, found.status) == ([dns.LOOKUP_LIMIT_S], "timeout")
    assert "no DNS server answered from pcf-x-dns/probe-a on node-a" in found.error
    assert "no servers could be reached" in found.error
    second = Attempts(lookup("timeout", error="no answer"))
    dns._settled(None, POD, "echo", second)
    assert (second.limits, len(checks)) == ([dns.SILENT_LIMIT_S], 2)


def test_a_server_answering_again_lifts_the_short_attempts(monkeypatch):
    dns._silent[POD.where] = reach("timeout", "no servers could be reached")
    monkeypatch.setattr(dns, "reach", lambda api, pod: pytest.fail("answered; nothing to check"))
    dns._settled(None, POD, "echo", Attempts(lookup("ok", ("10.96.1.1",))))
    again = Attempts(lookup("ok", ("10.96.1.1",)))
    dns._settled(None, POD, "echo", again)
    assert again.limits == [dns.LOOKUP_LIMIT_S]


def test_getents_not_found_is_final_only_when_a_server_answers(monkeypatch):
    monkeypatch.setattr(dns, "reach", lambda api, pod: reach("ok"))
    attempts = Attempts(lookup("notfound"))
    assert dns._settled(None, POD, "echo", attempts)[0].status == "notfound"
    assert len(attempts.limits) == 1
    monkeypatch.setattr(dns, "reach", lambda api, pod: reach("timeout", "no servers could be reached"))
    assert "no DNS server answered" in dns._settled(None, POD, "echo", Attempts(lookup("notfound")))[0].error


def test_batches_start_small_and_add_up_to_the_count():
    assert dns.batches(60) == [1, 4, 16, 39]
    assert dns.batches(1) == [1]
    assert sum(dns.batches(1000)) == 1000


def test_latency_stops_asking_when_no_server_answers(monkeypatch):
    asked = []

    def musl(api, pod, name, family, count, limit):
        asked.append(count)
        return [lookup("timeout", error="no answer")] * count

    monkeypatch.setattr(dns, "_musl", musl)
    monkeypatch.setattr(dns, "reach", lambda api, pod: reach("timeout", "no servers could be reached"))
    found = dns.latency(None, POD, "musl", "echo.", 60)
    assert asked == [1]
    assert found.samples_ms == () and found.failures[-1].startswith("59 lookups not asked: no DNS server answered")


def test_latency_keeps_asking_past_a_lost_answer_while_the_server_answers(monkeypatch):
    def musl(api, pod, name, family, count, limit):
        return [lookup("error", error="EAI_AGAIN")] + [lookup("ok", ("10.96.1.1",))] * (count - 1)

    monkeypatch.setattr(dns, "_musl", musl)
    monkeypatch.setattr(dns, "reach", lambda api, pod: reach("ok"))
    found = dns.latency(None, POD, "musl", "echo.", 60)
    assert (len(found.samples_ms), len(found.failures)) == (56, 4)


def test_latencies_ask_every_pod_each_through_its_own_client(monkeypatch):
    seen = []

    def latency(api, pod, resolver, name, count):
        seen.append(api)
        return pod.name

    monkeypatch.setattr(dns, "latency", latency)
    pods = [PodView("ns", f"probe-{i}", f"node-{i}", "Running", True, (), 0, "") for i in range(3)]
    shared = object.__new__(type("Client", (), {}))
    assert dns.latencies(shared, pods, "go", "echo.") == ["probe-0", "probe-1", "probe-2"]
    assert len({id(api) for api in seen}) == 3 and shared not in seen


@pytest.mark.parametrize(("mode", "held", "want"), [
    ("insecure", True, ("10.244.0.7",)),
    ("insecure", False, ("10.244.0.7",)),
    ("verified", True, ("10.244.0.7",)),
    ("verified", False, dns.NO_SUCH_NAME),
    ("disabled", True, dns.NO_SUCH_NAME),
])
def test_pod_record_answer_follows_the_mode(mode, held, want):
    assert dns.pod_record_answer(mode, "10.244.0.7", held) == want


def test_pod_record_answer_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="insecure, verified, disabled"):
        dns.pod_record_answer("strict", "10.244.0.7", True)


def test_outcome_tells_an_answer_from_no_such_name_from_a_failure():
    assert dns.outcome(lookup("ok", ("10.0.0.2", "10.0.0.1"))) == ("10.0.0.1", "10.0.0.2")
    assert dns.outcome(lookup("notfound")) == dns.outcome(lookup("nxdomain")) == dns.NO_SUCH_NAME
    assert dns.outcome(lookup("timeout", error="no answer")) == "timeout: no answer"


def test_unused_address_skips_the_pod_and_every_taken_address():
    assert dns.unused_address("10.244.0.5", ["10.244.0.5", "10.244.0.6", "fd00::6"]) == "10.244.0.7"
    assert dns.pod_record("10.244.0.7", "ns", "cluster.local") == "10-244-0-7.ns.pod.cluster.local"


def test_local_profile_names_the_pod_record_mode_of_the_local_corefile():
    corefile = yaml.safe_load((ROOT / "manifests/coredns/config.yaml").read_text())["data"]["Corefile"]
    modes = re.findall(r"^\s*pods (\w+)\s*$", corefile, re.MULTILINE)
    assert modes == [profiles.load("local").components.dns.pod_records]


def test_pod_record_mode_is_checked_and_the_error_names_the_choices():
    assert profiles.load("local", ["components.dns.pod_records=verified"]).components.dns.pod_records == "verified"
    with pytest.raises(ProfileError, match=r"components\.dns\.pod_records: expected one of insecure, verified, "
                                           r"disabled, got 'strict'"):
        profiles.load("local", ["components.dns.pod_records=strict"])
