"""The upgrade gate: the same checks before and after an upgrade, one verdict on both.

    python -m conformance.gate before --dir gate [--profile P] [--kubeconfig K] [-- pytest args]
    python -m conformance.gate after  --dir gate [--expect changes.yaml] [-- pytest args]
    python -m conformance.gate clean  --dir gate

`before` runs the suites, records a platform snapshot (versions of the API server, nodes,
runtimes, component workloads and CRDs; their health; certificate expiries; address pool usage;
Application states; deprecated APIs still requested, from the API server's own metrics) and
writes sentinels (conformance/sentinels.py): data the upgrade must keep, each checked byte for
byte afterwards, one for each claimed component that holds data. `after`
checks the sentinels, runs the suites again, diffs the snapshots and the promises, and fails
on any regression: a promise that held before and fails now, a lost or changed sentinel, a
component gone or unhealthy, or a version change the user did not declare as expected
(`expected_changes:` patterns in the file `--expect` names, e.g. `workloads/kube-system/Deployment/coredns`).

Sentinels carry a gate id of their own (never a run's) and an expiry of a week unless
`--keep-days` says otherwise: the run sweeper leaves them alone and removes them only past that
expiry; `after` and `clean` remove them. Exit codes: 0 pass, 1 a regression, 2 bad input.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fnmatch
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from conformance import InputError, compare, kube, namespaces, profile as profiles, run as runs
from conformance.guard import WriteGuard, WriteRefused
from conformance.outside import OutsideGuard
from conformance.sentinels import SENTINELS, TROUBLE, Door

GATE_FILE = "gate.json"
KEEP_DAYS = 7
SUITE_LIMIT_S = 3600
METRICS_TIMEOUT_S = 30
COULD_NOT_RUN = 2  # the suites' exit code when they could not run at all (bad input, a held lease)
# Version facts: a change here is a version change, which must be declared as expected.
VERSION_FIELDS = ("version", "kubelet", "runtime", "kernel", "os", "images", "served", "storage")
# Health facts: a change from the healthy value is a regression.
HEALTHY = {"ready": True, "healthy": True, "sync": "Synced", "health": "Healthy"}


# --- the snapshot ----------------------------------------------------------------------------

def _served(dyn: DynamicClient, api_version: str, kind: str):
    try:
        return dyn.resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError:
        return None


def _items(dyn: DynamicClient, api_version: str, kind: str) -> list[dict]:
    resource = _served(dyn, api_version, kind)
    return resource.get().to_dict().get("items") or [] if resource else []


def _key(obj: dict) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}".lstrip("/")


def _condition(obj: dict, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def component_namespaces(profile: profiles.Profile) -> list[str]:
    found = {"kube-system"}
    for name in profile.claimed:
        ns = getattr(profile.component(name), "namespace", None)
        if ns:
            found.add(ns)
    return sorted(found)


def _workloads(api: k8s.ApiClient, spaces: list[str]) -> dict:
    apps = k8s.AppsV1Api(api)
    out = {}
    for ns in spaces:
        for kind, lister in (("Deployment", apps.list_namespaced_deployment),
                             ("DaemonSet", apps.list_namespaced_daemon_set),
                             ("StatefulSet", apps.list_namespaced_stateful_set)):
            for w in api.sanitize_for_serialization(lister(ns)).get("items") or []:
                st = w.get("status") or {}
                want = st.get("desiredNumberScheduled") if kind == "DaemonSet" else (w["spec"].get("replicas", 1))
                have = st.get("numberReady") if kind == "DaemonSet" else st.get("readyReplicas")
                containers = w["spec"]["template"]["spec"].get("containers") or []
                out[f"{ns}/{kind}/{w['metadata']['name']}"] = {
                    "images": sorted(c["image"] for c in containers),
                    "ready_replicas": f"{have or 0}/{want or 0}", "healthy": (have or 0) >= (want or 0)}
    return out


DEPRECATED = re.compile(r'^apiserver_requested_deprecated_apis\{(?P<labels>[^}]*)\}\s+1')


def deprecated_apis(metrics: str) -> list[str]:
    """The deprecated APIs clients still request, from the API server's metrics text."""
    found = []
    for line in metrics.splitlines():
        m = DEPRECATED.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
            api = "/".join(p for p in (labels.get("group"), labels.get("version")) if p)
            removal = f"removed in {labels['removed_release']}" if labels.get("removed_release") else "deprecated"
            found.append(f"{api} {labels.get('resource', '?')} ({removal})")
    return sorted(set(found))


def snapshot(api: k8s.ApiClient, profile: profiles.Profile) -> dict:
    """What the platform is, read-only: versions, health, expiries, usage, states."""
    dyn = DynamicClient(api)
    core = k8s.CoreV1Api(api)
    nodes = {}
    for n in api.sanitize_for_serialization(core.list_node()).get("items") or []:
        info = n["status"]["nodeInfo"]
        nodes[n["metadata"]["name"]] = {"kubelet": info["kubeletVersion"], "runtime": info["containerRuntimeVersion"],
                                        "kernel": info["kernelVersion"], "os": info["osImage"],
                                        "ready": _condition(n, "Ready")}
    crds = {}
    for crd in _items(dyn, "apiextensions.k8s.io/v1", "CustomResourceDefinition"):
        versions = crd["spec"]["versions"]
        crds[crd["metadata"]["name"]] = {"served": sorted(v["name"] for v in versions if v.get("served")),
                                         "storage": next((v["name"] for v in versions if v.get("storage")), None)}
    certificates = {_key(c): {"ready": _condition(c, "Ready"), "not_after": (c.get("status") or {}).get("notAfter")}
                    for c in _items(dyn, "cert-manager.io/v1", "Certificate")}
    services = api.sanitize_for_serialization(core.list_service_for_all_namespaces()).get("items") or []
    pools = {}
    for pool in _items(dyn, "metallb.io/v1beta1", "IPAddressPool"):
        name = pool["metadata"]["name"]
        used = [s for s in services if (s["metadata"].get("annotations") or {}).get(
            "metallb.io/ip-allocated-from-pool", (s["metadata"].get("annotations") or {}).get(
                "metallb.universe.tf/ip-allocated-from-pool")) == name]
        pools[_key(pool)] = {"addresses": pool["spec"].get("addresses", []), "services_using": len(used)}
    applications = {}
    for app in _items(dyn, "argoproj.io/v1alpha1", "Application"):
        st = app.get("status") or {}
        applications[_key(app)] = {"sync": (st.get("sync") or {}).get("status"),
                                   "health": (st.get("health") or {}).get("status"),
                                   "revision": (st.get("sync") or {}).get("revision")}
    deprecated: list[str] | str
    method, url, headers, body, post = api.param_serialize("GET", "/metrics", header_params={"Accept": "text/plain"},
                                                           auth_settings=["BearerToken"])
    resp = api.call_api(method, url, headers, body, post, _request_timeout=METRICS_TIMEOUT_S)
    resp.read()
    if resp.status == 200:
        deprecated = deprecated_apis(resp.data.decode(errors="replace"))
    else:
        deprecated = f"unavailable: GET /metrics answered {resp.status} (the identity needs get on /metrics)"
    return {
        "taken": runs.format_time(runs.now()),
        "profile": profile.name,
        "server": {"version": k8s.VersionApi(api).get_code().git_version},
        "nodes": nodes,
        "workloads": _workloads(api, component_namespaces(profile)),
        "crds": crds,
        "certificates": certificates,
        "pools": pools,
        "applications": applications,
        "deprecated_apis": deprecated,
    }


@dataclass(frozen=True)
class Difference:
    """One fact that differs between the snapshots, and whether it is a regression."""

    key: str
    before: object
    after: object
    what: str  # "version change", "expected version change", "unhealthy", "gone", "new", "changed"
    regression: bool

    def __str__(self) -> str:
        return f"{self.what}: {self.key}: {json.dumps(self.before)} -> {json.dumps(self.after)}"


def _flat(section: dict, prefix: str) -> dict[str, dict]:
    return {f"{prefix}/{k}": v for k, v in section.items() if isinstance(v, dict)}


def diff(before: dict, after: dict, expected: list[str] = ()) -> list[Difference]:
    """Every difference between two snapshots; `expected` patterns (fnmatch on the object key,
    e.g. `workloads/kube-system/Deployment/coredns`) allow version changes of what they match."""
    out: list[Difference] = []
    sections = ("server", "nodes", "workloads", "crds", "certificates", "pools", "applications")
    old, new = {}, {}
    for section in sections:
        if section == "server":
            old["server"], new["server"] = before.get("server", {}), after.get("server", {})
            continue
        old.update(_flat(before.get(section) or {}, section))
        new.update(_flat(after.get(section) or {}, section))
    for key in sorted(set(old) | set(new)):
        allowed = any(fnmatch.fnmatch(key, pattern) for pattern in expected)
        if key not in new:
            out.append(Difference(key, old[key], None, "gone", not allowed))
            continue
        if key not in old:
            out.append(Difference(key, None, new[key], "new", False))
            continue
        for field in sorted(set(old[key]) | set(new[key])):
            was, now = old[key].get(field), new[key].get(field)
            if was == now:
                continue
            where = f"{key}.{field}"
            if field in VERSION_FIELDS:
                out.append(Difference(where, was, now, "expected version change" if allowed else "version change",
                                      not allowed))
            elif field in HEALTHY:
                out.append(Difference(where, was, now, "unhealthy" if was == HEALTHY[field] else "changed",
                                      was == HEALTHY[field]))
            else:
                out.append(Difference(where, was, now, "changed", False))
    gone_deprecated = before.get("deprecated_apis") if isinstance(before.get("deprecated_apis"), list) else []
    for api in after.get("deprecated_apis") if isinstance(after.get("deprecated_apis"), list) else []:
        if api not in gone_deprecated:
            out.append(Difference(f"deprecated_apis/{api}", None, "requested", "new", False))
    return out


# --- the gate's steps ------------------------------------------------------------------------

@dataclass
class Context:
    profile: profiles.Profile
    target: kube.Target
    directory: Path
    pytest_args: list[str]


def _connect(ctx: Context, guard: WriteGuard, stamp=None) -> k8s.ApiClient:
    api = kube.connect(ctx.target, guard, stamp)
    kube.check_reachable(api, ctx.target)
    return api


def run_suites(ctx: Context, where: Path) -> int:
    """The suites as a user runs them, their summary kept in `where`."""
    chosen = [] if any(a.startswith("suites") for a in ctx.pytest_args) else ["suites"]
    argv = [sys.executable, "-m", "pytest", *chosen, f"--profile={ctx.profile.source}",
            f"--reports={where}", *ctx.pytest_args]
    if ctx.target.kubeconfig:
        argv.append(f"--kubeconfig={ctx.target.kubeconfig}")
    if ctx.target.context:
        argv.append(f"--context={ctx.target.context}")
    print(f"gate: running the suites ({' '.join(argv[3:])})", flush=True)
    return subprocess.run(argv, cwd=Path(__file__).resolve().parents[1], timeout=SUITE_LIMIT_S).returncode


def before(ctx: Context, keep_days: float) -> int:
    state = ctx.directory / GATE_FILE
    if state.exists():
        raise InputError(f"a gate is already open in {ctx.directory} ({json.loads(state.read_text())['gate_id']}); "
                         "finish it with `nox -s gate-after` or remove it with `nox -s gate-clean`")
    code = run_suites(ctx, ctx.directory / "before")
    if code == COULD_NOT_RUN:
        print("gate not opened: the checks could not run (their message is above); nothing was written")
        return code
    reader = _connect(ctx, WriteGuard("read-only"))
    (ctx.directory / "before" / "snapshot.json").write_text(json.dumps(snapshot(reader, ctx.profile), indent=1))
    gate = runs.RunIdentity(runs.new_gate_id(), "full", max_age=dt.timedelta(days=keep_days))
    namespace = gate.name("sentinels")
    door = _door(ctx, gate, namespace)
    record = {"gate_id": gate.run_id, "namespace": namespace, "profile": ctx.profile.name,
              "expires": runs.format_time(runs.now() + gate.max_age), "sentinels": []}

    def save() -> None:
        state.write_text(json.dumps(record, indent=1))

    save()  # before the first write: `clean` finds whatever follows
    namespaces.create(door.api, namespace, labels={"platform-conformance.io/gate": gate.run_id})
    unwritten = []
    for sentinel in SENTINELS.values():
        if not sentinel.applies(ctx.profile):
            continue
        print(f"gate {gate.run_id}: writing the {sentinel.kind} sentinel", flush=True)
        # Until it is written, its entry says so and holds the names it reserves (see Door.reserve).
        pending = {"kind": sentinel.kind, "where": f"the {sentinel.kind} sentinel", "unwritten": True}
        record["sentinels"].append(pending)
        save()

        def reserve(names: dict, pending=pending) -> None:
            pending.update(names, reserved=True)
            save()
        try:
            record["sentinels"][-1] = sentinel.write(dataclasses.replace(door, reserve=reserve))
        except (WriteRefused, *TROUBLE) as exc:
            unwritten.append(f"the {sentinel.kind} sentinel could not be written: {type(exc).__name__}: {exc}")
            print(f"  {unwritten[-1]}", flush=True)
        save()
    print(f"gate {gate.run_id}: snapshot in {ctx.directory / 'before'}, "
          f"{len(record['sentinels']) - len(unwritten)} sentinel(s) in namespace {namespace} and under the "
          f"profile's outside prefixes until {record['expires']}; suites exit {code}")
    if unwritten:
        print(f"gate {gate.run_id} is open but not armed: {len(unwritten)} sentinel(s) could not be written "
              "(above); fix the component and start again (`nox -s gate-clean`, then gate-before)")
        return 1
    return code


def _door(ctx: Context, gate: runs.RunIdentity, namespace: str) -> Door:
    """The gate's own client and outside guard: its namespace, the allowlist, its outside names."""
    writer = _connect(ctx, WriteGuard.for_profile("full", [gate.prefix], ctx.profile.write_allowlist), gate.stamp)
    return Door(writer, namespace, ctx.profile, gate, OutsideGuard.for_profile("full", [gate.run_id], ctx.profile))


def _check(door: Door, record: dict) -> str | None:
    if record.get("unwritten"):
        return f"{record['where']} was never written (gate-before said why)"
    try:
        return SENTINELS[record["kind"]].check(door, record)
    except (WriteRefused, *TROUBLE) as exc:
        return f"{record['where']} could not be checked: {type(exc).__name__}: {exc}"


def after(ctx: Context, expected: list[str], keep_sentinels: bool) -> int:
    state = ctx.directory / GATE_FILE
    if not state.exists():
        raise InputError(f"no gate is open in {ctx.directory}: run `nox -s gate-before` first")
    record = json.loads(state.read_text())
    reader = _connect(ctx, WriteGuard("read-only"))
    door = _door(ctx, runs.RunIdentity(record["gate_id"], "full"), record["namespace"])
    lost = [problem for r in record["sentinels"] if (problem := _check(door, r))]
    code = run_suites(ctx, ctx.directory / "after")
    if code == COULD_NOT_RUN:
        print(f"gate {record['gate_id']} not judged: the checks could not run (their message is above); "
              "its sentinels stay: run gate-after again, or gate-clean")
        return code
    snap = snapshot(reader, ctx.profile)
    (ctx.directory / "after" / "snapshot.json").write_text(json.dumps(snap, indent=1))
    differences = diff(json.loads((ctx.directory / "before" / "snapshot.json").read_text()), snap, expected)
    promises = compare.compare(compare.load(ctx.directory / "before" / "summary.json"),
                               compare.load(ctx.directory / "after" / "summary.json"))
    regressions = ([f"sentinel: {p}" for p in lost] + [f"snapshot: {d}" for d in differences if d.regression]
                   + [f"promise: {r.promise} ({r.nodeid}): {r.before} -> {r.after}" for r in promises.regressions])
    verdict = {"gate_id": record["gate_id"], "verdict": "fail" if regressions else "pass",
               "exit_code": 1 if regressions else 0, "regressions": regressions,
               "sentinels": {"checked": len(record["sentinels"]), "lost_or_changed": lost},
               "snapshot": [str(d) for d in differences], "suites_exit_code": code}
    (ctx.directory / "verdict.json").write_text(json.dumps(verdict, indent=1))
    print(compare.render(promises))
    print("\nsnapshot differences:" if differences else "\nsnapshot: no differences")
    for d in differences:
        print(f"  {'REGRESSION ' if d.regression else ''}{d}")
    print(f"\nsentinels: {len(record['sentinels'])} checked, {len(lost)} lost or changed")
    for problem in lost:
        print(f"  REGRESSION {problem}")
    print(f"\ngate verdict: {verdict['verdict']} (exit {verdict['exit_code']})"
          + (f": {len(regressions)} regression(s)" if regressions else ""))
    if not keep_sentinels:
        clean(ctx)
    return verdict["exit_code"]


def clean(ctx: Context) -> int:
    """Remove the gate's sentinels (its namespace) and close it."""
    state = ctx.directory / GATE_FILE
    if not state.exists():
        print(f"no gate is open in {ctx.directory}: nothing to remove")
        return 0
    record = json.loads(state.read_text())
    door = _door(ctx, runs.RunIdentity(record["gate_id"], "full"), record["namespace"])
    left = []
    for r in record["sentinels"]:
        if r.get("unwritten") and not r.get("reserved"):
            continue  # nothing of it was made outside the gate's namespace
        try:
            SENTINELS[r["kind"]].remove(door, r)
        except (WriteRefused, *TROUBLE) as exc:
            left.append(f"{r['where']}: {type(exc).__name__}: {exc}")
    runs.delete_and_wait(DynamicClient(door.api), "v1", "Namespace", record["namespace"], timeout="namespace_deleted")
    if left:
        print(f"gate {record['gate_id']}: {len(left)} sentinel(s) could not be removed; the sweeper takes "
              f"them after {record['expires']}:\n  " + "\n  ".join(left))
        return 1
    state.unlink()
    print(f"gate {record['gate_id']}: sentinels removed (namespace {record['namespace']} and what they kept outside it)")
    return 0


def _expected(path: str | None) -> list[str]:
    if not path:
        return []
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        patterns = doc["expected_changes"]
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise TypeError("a list of strings")
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise InputError(f"--expect {path}: not a file of expected changes ({exc}); write "
                         "`expected_changes: [workloads/kube-system/Deployment/coredns, ...]`") from None
    return patterns


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m conformance.gate", description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("before", "after", "clean"))
    parser.add_argument("--dir", default="gate", type=Path, help="where the gate keeps its state (default: ./gate)")
    parser.add_argument("--profile", default="local", help="profile name or path (default: local)")
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--context", default=None)
    parser.add_argument("--expect", default=None, help="YAML file: expected_changes: [patterns] (after)")
    parser.add_argument("--keep-days", type=float, default=KEEP_DAYS,
                        help=f"sentinel expiry in days, honoured by the sweeper (default: {KEEP_DAYS})")
    parser.add_argument("--keep-sentinels", action="store_true", help="after: leave the sentinels in place")
    args = parser.parse_args(argv)
    try:
        profile = profiles.load(args.profile)
        target = kube.resolve_target(args.kubeconfig, args.context, None, profile.identities.full, "full")
        ctx = Context(profile, target, args.dir, pytest_args)
        args.dir.mkdir(parents=True, exist_ok=True)
        if args.step == "before":
            return before(ctx, args.keep_days)
        if args.step == "after":
            return after(ctx, _expected(args.expect), args.keep_sentinels)
        return clean(ctx)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the gate's state stays in its folder; `nox -s gate-clean` removes its sentinels",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
