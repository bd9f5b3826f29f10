"""DNS probes: lookups through three stub resolvers from a probe pod, latency, and the DNS server.

Applications resolve names through glibc, musl or Go's own resolver, and the three treat search
lists, `ndots` and missing address families differently, so a promise about names is checked
through each of them. glibc is driven with `getent` (addresses, through the search path) and
`dig` (SRV, PTR, CNAME and the response code, which getaddrinfo cannot show); musl and Go with
the project's resolve-musl and resolve-go (images/README.md), which print one JSON line per
lookup. Every command runs under a hard `timeout` inside the pod, so a silent server ends a
lookup with a status, not a hang.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Iterable

from kubernetes import client as k8s

from conformance.pods import PodView, exec_in

RESOLVERS = ("glibc", "musl", "go")
# One lookup, all retries and search-list expansions included, must end within this; a
# resolver left to its defaults (5 s per try, 2 tries, several search domains) could take a
# minute against a server that drops queries.
LOOKUP_LIMIT_S = 12
EXEC_MARGIN_S = 8
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


def _run(api: k8s.ApiClient, pod: PodView, argv: list[str]):
    return exec_in(api, pod.namespace, pod.name, ["timeout", str(LOOKUP_LIMIT_S), *argv],
                   timeout_s=LOOKUP_LIMIT_S + EXEC_MARGIN_S)


def _timed_out(exit_code: int) -> bool:
    return exit_code in (124, 143, -1)  # busybox timeout's SIGTERM, or the exec limit


# --- glibc: getent and dig -------------------------------------------------------------------

GETENT_DB = {"4": "ahostsv4", "6": "ahostsv6", "any": "ahosts"}


def getent(api: k8s.ApiClient, pod: PodView, name: str, family: str = "4") -> Lookup:
    """getaddrinfo through glibc (`getent ahosts*`), search path and ndots applied."""
    argv = ["getent", GETENT_DB[family], name]
    res = _run(api, pod, argv)
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
        status, error = "timeout", f"no answer within {LOOKUP_LIMIT_S} s"
    else:
        status, error = "error", (res.stderr.strip() or f"getent exit {res.exit_code}")
    qtype = {"4": "A", "6": "AAAA", "any": "ADDR"}[family]
    return Lookup("glibc", " ".join(argv), name, qtype, status, tuple(addresses), (), canonical, error,
                  res.elapsed_s * 1000, _where(pod), res.stdout + res.stderr)


_STATUS = re.compile(r"status: ([A-Z]+)")
_QUERY_TIME = re.compile(r"Query time: (\d+) msec")


def dig(api: k8s.ApiClient, pod: PodView, name: str, qtype: str = "A") -> Lookup:
    """One query through the pod's resolv.conf servers with dig (no search list: give an FQDN).

    `qtype` PTR takes an IP address as `name`. Addresses of the answer section are listed for A
    and AAAA; every other record type is listed as its rdata (`0 50 8080 target.`).
    """
    argv = ["dig", "+time=3", "+tries=2", "+nocookie", "+noall", "+comments", "+answer", "+stats"]
    argv += ["-x", name] if qtype == "PTR" else [qtype, name]
    res = _run(api, pod, argv)
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
        status, error = "error", f"DNS response code {rcode}"
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
    return _json_lookups(api, pod, [MUSL, "-family", family, "-count", str(count), name], name, count)


def go(api: k8s.ApiClient, pod: PodView, name: str, qtype: str = "A", count: int = 1) -> list[Lookup]:
    """Go's pure resolver (resolve-go): ADDR, A, AAAA, SRV, PTR or CNAME."""
    return _json_lookups(api, pod, [GO, "-type", qtype, "-timeout", "5s", "-count", str(count), name], name, count)


def _json_lookups(api: k8s.ApiClient, pod: PodView, argv: list[str], name: str, count: int) -> list[Lookup]:
    res = exec_in(api, pod.namespace, pod.name, ["timeout", str(LOOKUP_LIMIT_S * count), *argv],
                  timeout_s=LOOKUP_LIMIT_S * count + EXEC_MARGIN_S)
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


def _where(pod: PodView) -> str:
    return pod.where


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


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
        return (f"{self.resolver} {self.name} from {self.where}: {len(self.samples_ms)} lookups, "
                f"p50 {self.p50:.2f} ms, p95 {self.p95:.2f} ms, {len(self.failures)} failed")


def percentile(values: Iterable[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def latency(api: k8s.ApiClient, pod: PodView, resolver: str, name: str, count: int = 60) -> Latency:
    """Time `count` uncached lookups of `name` (IPv4) with resolve-musl or resolve-go.

    Neither program caches, so each lookup reaches the server; failed lookups are kept apart
    (a lookup that did not answer has no latency, and is reported as a failure instead).
    """
    lookups = musl(api, pod, name, "4", count) if resolver == "musl" else go(api, pod, name, "A", count)
    ok = tuple(lk.elapsed_ms for lk in lookups if lk.status == "ok")
    failed = tuple(f"{lk.status}: {lk.error}" for lk in lookups if lk.status != "ok")
    missing = max(0, count - len(lookups))
    return Latency(resolver, name, _where(pod), ok, failed + ("no output",) * missing)


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

