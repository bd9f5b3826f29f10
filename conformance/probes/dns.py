"""DNS probes: lookups through three stub resolvers from a probe pod, latency, and the DNS server.

Applications resolve names through glibc, musl or Go's own resolver, and the three treat search
lists, `ndots` and missing address families differently, so a promise about names is checked
through each of them. glibc is driven with `getent` (addresses, through the search path) and
`dig` (SRV, PTR, CNAME and the response code, which getaddrinfo cannot show); musl and Go with
the project's resolve-musl and resolve-go (images/README.md), which print one JSON line per
lookup. Every command runs under a hard `timeout` inside the pod, so a silent server ends a
lookup with a status, not a hang.

A lookup that gets no answer is told apart by asking the pod's DNS servers one short question
of their own zone (`reach`): while a server answers that, the lookup is asked again within the
named timeout `dns_answer` (a dropped packet, a slow upstream); when no server answers at all,
the lookup fails at once with that evidence, and later lookups from the same pod get one short
attempt until a server answers again. So a cluster without DNS fails every lookup promise in
seconds instead of each waiting out its resolvers' retries.
"""
from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
import math
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from kubernetes import client as k8s

from conformance.pods import PodView, exec_in
from conformance.waiting import WaitTimeout, wait_for

RESOLVERS = ("glibc", "musl", "go")
# One attempt of a lookup, search-list expansions included, ends within this; a resolver left
# to its defaults (5 s per try, 2 tries, several search domains) could take a minute against a
# server that drops queries. An attempt cut short while the server answers is asked again.
LOOKUP_LIMIT_S = 5
# One attempt from a pod whose DNS servers answered nothing at the last check.
SILENT_LIMIT_S = 2
# The pause before a lookup without an answer is asked again.
ASK_AGAIN_AFTER_S = 1.0
# dig's wait for each server in the reach check.
REACH_WAIT_S = 1
EXEC_MARGIN_S = 8
# A server answered these (an address, no such name, no data): never asked again.
ANSWERED = ("ok", "nxdomain", "nodata")
# Final once a server is known to answer: glibc reports an unreachable server as "not found" too.
FINAL_WHEN_REACHED = ANSWERED + ("notfound",)
MUSL = "/usr/local/bin/resolve-musl"
GO = "/usr/local/bin/resolve-go"


@dataclass(frozen=True)
class Lookup:
    """One question to one resolver from one pod, and its answer."""

    resolver: str  # glibc, musl, go
    tool: str  # the command line run in the pod
    name: str
    qtype: str  # A, AAAA, ADDR (either family), SRV, PTR, CNAME
    status: str  # ok, nxdomain, nodata, notfound (glibc: no such name or no data), timeout, error
    addresses: tuple[str, ...]
    records: tuple[str, ...]
    canonical: str | None
    error: str | None
    elapsed_ms: float
    where: str  # namespace/pod on node
    raw: str

    def __str__(self) -> str:
        got = ", ".join(self.addresses or self.records) or "-"
        extra = f"; error: {self.error}" if self.error else ""
        return (f"{self.resolver} {self.qtype} {self.name} from {self.where}: {self.status} [{got}]"
                f" in {self.elapsed_ms:.1f} ms{extra}")


def _run(api: k8s.ApiClient, pod: PodView, argv: list[str], limit_s: float = LOOKUP_LIMIT_S):
    return exec_in(api, pod.namespace, pod.name, ["timeout", f"{limit_s:g}", *argv],
                   timeout_s=limit_s + EXEC_MARGIN_S)


def _timed_out(exit_code: int) -> bool:
    return exit_code in (124, 143, -1)  # busybox timeout's SIGTERM, or the exec limit


# --- glibc: getent and dig -------------------------------------------------------------------

GETENT_DB = {"4": "ahostsv4", "6": "ahostsv6", "any": "ahosts"}


def getent(api: k8s.ApiClient, pod: PodView, name: str, family: str = "4") -> Lookup:
    """getaddrinfo through glibc (`getent ahosts*`), search path and ndots applied."""
    return _settled(api, pod, f"getent {GETENT_DB[family]} {name}",
                    lambda limit: [_getent(api, pod, name, family, limit)])[0]


def _getent(api: k8s.ApiClient, pod: PodView, name: str, family: str, limit_s: float) -> Lookup:
    argv = ["getent", GETENT_DB[family], name]
    res = _run(api, pod, argv, limit_s)
    addresses, canonical = [], None
    for line in res.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] not in addresses:
            addresses.append(fields[0])
        if len(fields) >= 3 and canonical is None:
            canonical = fields[2]
    if res.exit_code == 0:
        status, error = "ok", None
    elif res.exit_code == 2:
        status, error = "notfound", "getent: no such name, or no address of that family (exit 2)"
    elif _timed_out(res.exit_code):
        status, error = "timeout", f"no answer within {limit_s:g} s"
    else:
        status, error = "error", (res.stderr.strip() or f"getent exit {res.exit_code}")
    qtype = {"4": "A", "6": "AAAA", "any": "ADDR"}[family]
    return Lookup("glibc", " ".join(argv), name, qtype, status, tuple(addresses), (), canonical, error,
                  res.elapsed_s * 1000, _where(pod), res.stdout + res.stderr)


_STATUS = re.compile(r"status: ([A-Z]+)")
RESPONSE_CODE = "DNS response code"
_QUERY_TIME = re.compile(r"Query time: (\d+) msec")


def dig(api: k8s.ApiClient, pod: PodView, name: str, qtype: str = "A") -> Lookup:
    """One query through the pod's resolv.conf servers with dig (no search list: give an FQDN).

    `qtype` PTR takes an IP address as `name`. Addresses of the answer section are listed for A
    and AAAA; every other record type is listed as its rdata (`0 50 8080 target.`).
    """
    return _settled(api, pod, f"dig {qtype} {name}", lambda limit: [_dig(api, pod, name, qtype, limit)])[0]


def _dig(api: k8s.ApiClient, pod: PodView, name: str, qtype: str, limit_s: float, tries: str = "+tries=2",
         wait: str = "+time=2") -> Lookup:
    argv = ["dig", wait, tries, "+nocookie", "+noall", "+comments", "+answer", "+stats"]
    argv += ["-x", name] if qtype == "PTR" else [qtype, name]
    res = _run(api, pod, argv, limit_s)
    header = _STATUS.search(res.stdout)
    addresses, records = [], []
    for line in res.stdout.splitlines():
        fields = line.split(None, 4)
        if line.startswith(";") or len(fields) < 5 or fields[2] != "IN":
            continue
        rtype, rdata = fields[3], fields[4].strip()
        if rtype in ("A", "AAAA") and qtype in ("A", "AAAA"):
            addresses.append(rdata)
        elif rtype == qtype or (qtype == "CNAME" and rtype == "CNAME"):
            records.append(rdata)
    query_ms = _QUERY_TIME.search(res.stdout)
    rcode = header.group(1) if header else None
    if rcode == "NOERROR":
        status = "ok" if (addresses or records) else "nodata"
        error = None
    elif rcode == "NXDOMAIN":
        status, error = "nxdomain", None
    elif rcode:
        status, error = "error", f"{RESPONSE_CODE} {rcode}"
    elif _timed_out(res.exit_code) or res.exit_code == 9:
        status, error = "timeout", _last_line(res.stdout + res.stderr) or "no answer"
    else:
        status, error = "error", _last_line(res.stdout + res.stderr) or f"dig exit {res.exit_code}"
    elapsed = float(query_ms.group(1)) if query_ms else res.elapsed_s * 1000
    return Lookup("glibc", " ".join(argv), name, qtype, status, tuple(addresses), tuple(records), None, error,
                  elapsed, _where(pod), res.stdout + res.stderr)


# --- musl and Go: the project's resolvers ----------------------------------------------------

def musl(api: k8s.ApiClient, pod: PodView, name: str, family: str = "4", count: int = 1) -> list[Lookup]:
    """getaddrinfo through musl (resolve-musl), search path and ndots applied."""
    return _settled(api, pod, f"resolve-musl -family {family} {name}",
                    lambda limit: _musl(api, pod, name, family, count, limit))


def go(api: k8s.ApiClient, pod: PodView, name: str, qtype: str = "A", count: int = 1) -> list[Lookup]:
    """Go's pure resolver (resolve-go): ADDR, A, AAAA, SRV, PTR or CNAME."""
    return _settled(api, pod, f"resolve-go -type {qtype} {name}",
                    lambda limit: _go(api, pod, name, qtype, count, limit))


def _musl(api: k8s.ApiClient, pod: PodView, name: str, family: str, count: int, limit_s: float) -> list[Lookup]:
    return _json_lookups(api, pod, [MUSL, "-family", family, "-count", str(count), name], name, count, limit_s)


def _go(api: k8s.ApiClient, pod: PodView, name: str, qtype: str, count: int, limit_s: float) -> list[Lookup]:
    # Go's own limit ends each lookup just before the pod's `timeout` would, so it reports its error.
    argv = [GO, "-type", qtype, "-timeout", f"{max(limit_s - 0.5, 0.5):g}s", "-count", str(count), name]
    return _json_lookups(api, pod, argv, name, count, limit_s)


def _json_lookups(api: k8s.ApiClient, pod: PodView, argv: list[str], name: str, count: int,
                  limit_s: float) -> list[Lookup]:
    res = exec_in(api, pod.namespace, pod.name, ["timeout", f"{limit_s * count:g}", *argv],
                  timeout_s=limit_s * count + EXEC_MARGIN_S)
    out = []
    for line in res.stdout.splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        qtype = d["type"] if d["type"] != "ADDR" or d["family"] == "any" else {"4": "A", "6": "AAAA"}[d["family"]]
        out.append(Lookup(d["resolver"], " ".join(argv), d["name"], qtype, d["status"], tuple(d["addresses"] or ()),
                          tuple(d["records"] or ()), d.get("canonical"), d.get("error"), float(d["elapsed_ms"]),
                          _where(pod), line))
    if not out:  # the program never printed: it could not run, or the pod could not be reached
        status = "timeout" if _timed_out(res.exit_code) else "error"
        resolver = "musl" if argv[0] == MUSL else "go"
        out.append(Lookup(resolver, " ".join(argv), name, "?", status, (), (), None,
                          _last_line(res.stderr) or f"exit {res.exit_code}", res.elapsed_s * 1000, _where(pod),
                          res.stdout + res.stderr))
    return out


def address_lookup(api: k8s.ApiClient, pod: PodView, resolver: str, name: str, family: str) -> Lookup:
    """An address lookup of `name` (family 4 or 6) through one of the three resolvers."""
    if resolver == "glibc":
        return getent(api, pod, name, family)
    if resolver == "musl":
        return musl(api, pod, name, family)[0]
    return go(api, pod, name, {"4": "A", "6": "AAAA"}[family])[0]


# --- pod A records ---------------------------------------------------------------------------
# How a cluster DNS answers `<dashed-ip>.<namespace>.pod.<domain>` (CoreDNS's `pods` option):
# `insecure` answers any dashed address with that address, pod or not; `verified` only an
# address a pod of that namespace holds, and NXDOMAIN otherwise; `disabled` answers none.
POD_RECORD_MODES = ("insecure", "verified", "disabled")
NO_SUCH_NAME = "no such name"


def pod_record(ip: str, namespace: str, domain: str) -> str:
    return f"{ip.replace('.', '-')}.{namespace}.pod.{domain}"


def pod_record_answer(mode: str, ip: str, held_by_pod: bool) -> tuple[str, ...] | str:
    """What the pod A record of `ip` resolves to under `mode`: the address, or no such name."""
    if mode not in POD_RECORD_MODES:
        raise ValueError(f"pod record mode {mode!r} is not one of {', '.join(POD_RECORD_MODES)}")
    if mode == "insecure" or (mode == "verified" and held_by_pod):
        return (ip,)
    return NO_SUCH_NAME


def outcome(lookup: Lookup) -> tuple[str, ...] | str:
    """An address lookup as an answer: its addresses, no such name, or the status that is neither.

    getent's "not found" counts as no such name: it is final only once a server answered.
    """
    if lookup.status == "ok":
        return tuple(sorted(lookup.addresses))
    if lookup.status in ("nxdomain", "notfound"):
        return NO_SUCH_NAME
    return f"{lookup.status}: {lookup.error}"


def unused_address(near: str, taken: Iterable[str]) -> str:
    """The first IPv4 address after `near` that none of `taken` is."""
    held = set(taken)
    candidate = ipaddress.IPv4Address(near)
    while str(candidate) in held or candidate == ipaddress.IPv4Address(near):
        candidate += 1
    return str(candidate)


def _where(pod: PodView) -> str:
    return pod.where


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- telling a lost answer from a silent server -----------------------------------------------

@dataclass(frozen=True)
class Reach:
    """Whether any of a pod's DNS servers answers a question of the cluster's own zone."""

    where: str
    servers: tuple[str, ...]  # the nameservers of the pod's resolv.conf
    question: str
    answer: Lookup  # dig's view: any response code means a server was reached

    @property
    def answered(self) -> bool:
        """Any response code counts, SERVFAIL and REFUSED included: a server was reached."""
        return self.answer.status in ANSWERED or (self.answer.error or "").startswith(RESPONSE_CODE)

    def __str__(self) -> str:
        servers = ", ".join(self.servers) or "none in resolv.conf"
        if self.answered:
            return f"a DNS server of {self.where} ({servers}) answers {self.question}: {self.answer.status}"
        return (f"no DNS server answered from {self.where} (nameservers {servers}; "
                f"`{self.answer.tool}`: {self.answer.error})")


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...]
    search: tuple[str, ...]

    @property
    def zone(self) -> str:
        """The cluster's own zone, which the cluster DNS answers itself without forwarding:
        the domain of the `svc.<domain>` search entry; the root when the pod has none."""
        return next((d[len("svc."):] for d in self.search if d.startswith("svc.")), "") + "."


def parse_resolv_conf(text: str) -> ResolvConf:
    servers, search = [], []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
        elif fields and fields[0] in ("search", "domain"):
            search = fields[1:]
    return ResolvConf(tuple(servers), tuple(search))


# Pods (by where) whose DNS servers answered nothing at the last check, and what was asked.
# A pod's resolv.conf is fixed when it starts, so it is read once per pod.
_silent: dict[str, Reach] = {}
_resolv: dict[str, ResolvConf] = {}
_lock = threading.Lock()


def reach(api: k8s.ApiClient, pod: PodView) -> Reach:
    """Ask the pod's DNS servers, once each and briefly, for the SOA of the cluster's zone."""
    with _lock:
        conf = _resolv.get(pod.where)
    if conf is None:
        res = exec_in(api, pod.namespace, pod.name, ["cat", "/etc/resolv.conf"], timeout_s=EXEC_MARGIN_S)
        conf = parse_resolv_conf(res.stdout)
        if res.exit_code == 0:
            with _lock:
                _resolv[pod.where] = conf
    tries = len(conf.nameservers) or 1
    answer = _dig(api, pod, conf.zone, "SOA", REACH_WAIT_S * tries + 1, tries="+tries=1",
                  wait=f"+time={REACH_WAIT_S}")
    found = Reach(pod.where, conf.nameservers, f"{conf.zone} SOA", answer)
    with _lock:
        if found.answered:
            _silent.pop(pod.where, None)
        else:
            _silent[pod.where] = found
    return found


def _limit_for(pod: PodView) -> float:
    with _lock:
        return SILENT_LIMIT_S if pod.where in _silent else LOOKUP_LIMIT_S


def _settled(api: k8s.ApiClient, pod: PodView, what: str,
             attempt: Callable[[float], list[Lookup]]) -> list[Lookup]:
    """Ask until a server answers, within `dns_answer`; stop at once when no server answers."""
    found = attempt(_limit_for(pod))
    if all(lk.status in ANSWERED for lk in found):
        with _lock:
            _silent.pop(pod.where, None)
        return found
    seen = reach(api, pod)
    if not seen.answered:
        return [_noted(lk, str(seen)) for lk in found]
    if all(lk.status in FINAL_WHEN_REACHED for lk in found):
        return found
    try:
        return wait_for(f"an answer to `{what}` from {pod.where}", lambda: attempt(LOOKUP_LIMIT_S),
                        until=lambda lookups: all(lk.status in FINAL_WHEN_REACHED for lk in lookups),
                        timeout="dns_answer", interval=ASK_AGAIN_AFTER_S)
    except WaitTimeout as exc:
        last = exc.last_state if exc.last_state is not None else found
        why = (f"asked {exc.attempts + 1} times over {exc.elapsed_s:.0f} s (limit {exc.limit_s:g} s from "
               f"{exc.limit_name}) while {seen}")
        return [_noted(lk, why) for lk in last]


def _noted(lookup: Lookup, note: str) -> Lookup:
    return dataclasses.replace(lookup, error=f"{lookup.error}; {note}" if lookup.error else note)


# --- latency ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Latency:
    """Lookup times of one resolver for one name, from one pod."""

    resolver: str
    name: str
    where: str
    samples_ms: tuple[float, ...]
    failures: tuple[str, ...]  # status and error of each lookup that did not answer

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)

    def __str__(self) -> str:
        failed = f": {'; '.join(dict.fromkeys(self.failures))}" if self.failures else ""
        return (f"{self.resolver} {self.name} from {self.where}: {len(self.samples_ms)} lookups, "
                f"p50 {self.p50:.2f} ms, p95 {self.p95:.2f} ms, {len(self.failures)} failed{failed}")


def percentile(values: Iterable[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def batches(count: int) -> list[int]:
    """Sizes of the successive lookup runs that make up `count` samples: 1, 4, 16, ... then the rest.

    Small first, so that a server that answers nothing costs a few short attempts, not `count`
    full ones; a pod is asked again only while its server answers.
    """
    sizes, size = [], 1
    while sum(sizes) < count:
        sizes.append(min(size, count - sum(sizes)))
        size *= 4
    return sizes


def latency(api: k8s.ApiClient, pod: PodView, resolver: str, name: str, count: int = 60) -> Latency:
    """Time `count` uncached lookups of `name` (IPv4) with resolve-musl or resolve-go.

    Neither program caches, so each lookup reaches the server; failed lookups are kept apart
    (a lookup that did not answer has no latency, and is reported as a failure instead). Once a
    lookup goes unanswered and no DNS server of the pod answers at all, the rest are not asked.
    """
    samples: list[float] = []
    failed: list[str] = []
    asked = 0
    for size in batches(count):
        limit = _limit_for(pod)
        lookups = (_musl(api, pod, name, "4", size, limit) if resolver == "musl"
                   else _go(api, pod, name, "A", size, limit))
        asked += size
        samples += [lk.elapsed_ms for lk in lookups if lk.status == "ok"]
        failed += [f"{lk.status}: {lk.error}" for lk in lookups if lk.status != "ok"]
        failed += ["no output"] * max(0, size - len(lookups))
        if all(lk.status in ANSWERED for lk in lookups):
            continue
        seen = reach(api, pod)
        if not seen.answered and asked < count:
            failed.append(f"{count - asked} lookups not asked: {seen}")
            break
    return Latency(resolver, name, _where(pod), tuple(samples), tuple(failed))


def latencies(api: k8s.ApiClient, pods: Sequence[PodView], resolver: str, name: str,
              count: int = 60) -> list[Latency]:
    """`latency` from every pod at once, so one slow or silent node does not add to the others.

    The client library's exec stream swaps a method on the client object while it connects, so
    each thread asks through its own shallow copy of the client.
    """
    if not pods:
        return []
    with ThreadPoolExecutor(max_workers=min(len(pods), 8), thread_name_prefix="dns-latency") as pool:
        return list(pool.map(lambda pod: latency(copy.copy(api), pod, resolver, name, count), pods))


# --- the DNS server as the API sees it -------------------------------------------------------

@dataclass(frozen=True)
class DnsServer:
    """The cluster DNS Service and Deployment named by a profile, as found."""

    namespace: str
    service: str
    deployment: str
    service_found: bool
    cluster_ips: tuple[str, ...]
    ports: tuple[str, ...]  # "53/UDP", "53/TCP"
    ready_endpoints: tuple[str, ...]  # addresses of ready endpoints behind the Service
    deployment_found: bool
    desired: int | None
    ready: int | None
    available: int | None

    def problems(self, want_ip: str | None = None, want_replicas: int | None = None) -> list[str]:
        """What is wrong with the DNS server, each naming the object: empty when it is healthy."""
        svc, dep = f"Service {self.namespace}/{self.service}", f"Deployment {self.namespace}/{self.deployment}"
        found = []
        if not self.service_found:
            found.append(f"{svc} does not exist")
        else:
            if want_ip and want_ip not in self.cluster_ips:
                found.append(f"{svc} has clusterIPs {list(self.cluster_ips)}, not {want_ip}")
            if not self.ready_endpoints:
                found.append(f"{svc} has no ready endpoints")
        if not self.deployment_found:
            found.append(f"{dep} does not exist")
        else:
            if want_replicas is not None and self.desired != want_replicas:
                found.append(f"{dep} runs {self.desired} replicas, not {want_replicas}")
            if not self.ready or (self.desired is not None and self.ready < self.desired):
                found.append(f"{dep} has {self.ready or 0} of {self.desired} replicas ready")
        return found


def server(api: k8s.ApiClient, namespace: str, service: str, deployment: str) -> DnsServer:
    """Read the DNS Service, its EndpointSlices and the Deployment (read-only)."""
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    discovery = k8s.DiscoveryV1Api(api)
    timeout = (5, 15)
    svc = _read_or_none(lambda: core.read_namespaced_service(service, namespace, _request_timeout=timeout))
    dep = _read_or_none(lambda: apps.read_namespaced_deployment(deployment, namespace, _request_timeout=timeout))
    ready: list[str] = []
    if svc is not None:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}", _request_timeout=timeout).items
        for sl in slices:
            for ep in sl.endpoints or []:
                if ep.conditions is None or ep.conditions.ready is not False:
                    ready += [a for a in ep.addresses if a not in ready]
    return DnsServer(
        namespace=namespace, service=service, deployment=deployment, service_found=svc is not None,
        cluster_ips=tuple(svc.spec.cluster_ips or ()) if svc else (),
        ports=tuple(f"{p.port}/{p.protocol}" for p in svc.spec.ports or []) if svc else (),
        ready_endpoints=tuple(ready), deployment_found=dep is not None,
        desired=dep.spec.replicas if dep else None,
        ready=(dep.status.ready_replicas or 0) if dep else None,
        available=(dep.status.available_replicas or 0) if dep else None)


def _read_or_none(read):
    try:
        return read()
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise

