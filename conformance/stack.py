"""Install the pinned stack (manifests/stack.yaml) through the one loader, behind readiness gates.

Idempotent: server-side apply converges objects that exist already, and the gates return at
once when a component is ready. Adding a component means adding an entry and its overlays.
A component's documents are its upstream manifests, read at install time from the pinned
module in the Go module cache and adjusted by the entry's `patches`, followed by the
project's own overlays under manifests/. Components come in tiers (conformance/cluster/tiers.py);
what got installed is recorded, so the project's tests can tell an absent tier from a broken one.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes.dynamic import DynamicClient

from conformance import InputError, manifests
from conformance.cluster import paths
from conformance.waiting import WaitTimeout, wait_for
from conformance import profile as profiles

STACK = Path(__file__).resolve().parents[1] / "manifests" / "stack.yaml"
# What `install` put on the local cluster (removed with the cluster's state by `cluster down`).
RECORD = paths.STATE / "stack.json"


@dataclass(frozen=True)
class Component:
    """One installable entry of the stack list."""

    name: str
    manifests: tuple[str, ...]
    images: tuple[str, ...]
    ready: tuple[dict, ...]
    claims: str | None  # the profile component it provides; None: the suite's own, always installed
    tier: str = "core"
    upstream: tuple[dict, ...] = ()   # {program, path}: files or folders inside a pinned module
    patches: tuple[dict, ...] = ()    # {kind, name, namespace?, set: {path: value}, drop: bool}


def components(stack: Path = STACK) -> list[Component]:
    data = yaml.safe_load(stack.read_text())
    return [Component(c["name"], tuple(c.get("manifests", ())), tuple(c.get("images", ())),
                      tuple(c.get("ready", ())), c.get("claims"), c.get("tier", "core"),
                      tuple(c.get("upstream", ())), tuple(c.get("patches", ()))) for c in data["components"]]


_SEGMENT = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


def _segments(path: str) -> list[tuple[str, str]]:
    """`a.b[name=x][0][some.key/with.dots].c` -> (kind, value) pairs: key, match, index."""
    out = []
    for key, bracket in _SEGMENT.findall(path):
        if key:
            out.append(("key", key))
        elif "=" in bracket:
            out.append(("match", bracket))
        elif bracket.isdigit():
            out.append(("index", bracket))
        else:
            out.append(("key", bracket))
    return out


def set_path(doc: dict, path: str, value) -> None:
    """Set one field of a document; `[name=x]` picks the list item whose `name` is x. A missing
    list item is an error (a patch that silently misses is worse than none)."""
    steps = _segments(path)
    if not steps:
        raise InputError(f"patch path {path!r} names no field; write it like spec.template.spec.containers[name=app].image")
    node = doc
    for i, (kind, step) in enumerate(steps):
        last = i == len(steps) - 1
        if kind == "key":
            if last:
                node[step] = value
            else:
                node = node.setdefault(step, [] if steps[i + 1][0] != "key" else {})
        else:
            if not isinstance(node, list):
                raise InputError(f"patch path {path!r}: [{step}] selects from a list, found {type(node).__name__}; "
                                 "correct the path in manifests/stack.yaml")
            if kind == "index":
                at = int(step)
            else:
                field, want = step.split("=", 1)
                at = next((n for n, item in enumerate(node) if str(item.get(field)) == want), None)
            if at is None or at >= len(node):
                raise InputError(f"patch path {path!r}: no list item [{step}]; correct the path in "
                                 "manifests/stack.yaml (upstream may have renamed it)")
            if last:
                node[at] = value
            else:
                node = node[at]


def patched(docs: list[dict], patches: tuple[dict, ...], component: str) -> list[dict]:
    """Upstream documents with the entry's patches applied; a patch that matches nothing fails."""
    out = list(docs)
    for patch in patches:
        hits = [d for d in out if d.get("kind") == patch["kind"] and d["metadata"].get("name") == patch["name"]
                and patch.get("namespace") in (None, d["metadata"].get("namespace"))]
        if not hits:
            raise InputError(f"stack component {component}: patch for {patch['kind']} {patch['name']} "
                             "matches no upstream document; correct the patch in manifests/stack.yaml")
        for doc in hits:
            if patch.get("drop"):
                out.remove(doc)
            for path, value in (patch.get("set") or {}).items():
                set_path(doc, path, value)
    return out


def provider_patches(provider: str, stack: Path = STACK) -> dict[str, tuple[dict, ...]]:
    """The stack list's patches for another provider's cluster, by component (none for local)."""
    if provider == "local":
        return {}
    found = (yaml.safe_load(stack.read_text()).get("providers") or {}).get(provider)
    if found is None:
        raise InputError(f"provider {provider!r} has no entry under providers: in {stack}; add one or use local")
    return {name: tuple(patches) for name, patches in found.items()}


def documents(comp: Component, base: Path = STACK.parent, provider: str = "local") -> list[dict]:
    """Everything the component applies: upstream manifests (patched), then the overlays, then
    what differs on the provider's cluster."""
    docs: list[dict] = []
    if comp.upstream:
        from conformance.cluster import build

        progs = build.programs()
        for source in comp.upstream:
            docs += manifests.read([progs[source["program"]].source() / source["path"]])
    docs = patched(docs, comp.patches, comp.name) + manifests.read([base / m for m in comp.manifests])
    return patched(docs, provider_patches(provider).get(comp.name, ()), comp.name)


def installed(record: Path | None = None) -> set[str]:
    """Names of the stack components installed on the local cluster (empty when none is)."""
    try:
        return set(json.loads((record or RECORD).read_text())["components"])
    except (OSError, ValueError, KeyError):
        return set()


def _record(names: list[str], record: Path) -> None:
    if not record.parent.is_dir():
        return
    data = {"components": {}}
    if record.exists():
        data = json.loads(record.read_text())
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    data["components"].update({name: {"installed_at": stamp} for name in names})
    record.write_text(json.dumps(data, indent=1))


def _ready(obj: dict) -> tuple[bool, str]:
    """Whether a workload has all its replicas ready, and the numbers that say so."""
    spec, st = obj.get("spec", {}), obj.get("status", {})
    if obj["kind"] == "DaemonSet":
        want, have = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
        return want > 0 and have == want, f"{have}/{want} pods ready"
    want, have = spec.get("replicas", 1), st.get("availableReplicas", 0) or 0
    return have >= want, f"{have}/{want} replicas available"


def wait_ready(api, gate: dict) -> None:
    resource = DynamicClient(api).resources.get(api_version=gate.get("apiVersion", "apps/v1"), kind=gate["kind"])
    where = f"{gate.get('namespace', '')}/{gate['name']}".lstrip("/")
    wait_for(f"{gate['kind']} {where} to have every replica ready",
             lambda: _ready(resource.get(name=gate["name"], namespace=gate.get("namespace")).to_dict()),
             until=lambda state: state[0], timeout="deployment_available")


def install(api, profile: profiles.Profile, names: list[str] | None = None, log=print,
            tiers: tuple[str, ...] = ("core",), prepare=None, record: Path = RECORD,
            provider: str = "local") -> list[str]:
    """Install the entries of `tiers` the profile claims (or just `names`), in stack order;
    `prepare(tier)` readies a tier's programs, images and host services before its first
    component. Returns the names installed."""
    done: list[str] = []
    prepared: set[str] = set()
    for comp in components():
        if (names and comp.name not in names) or comp.tier not in tiers:
            continue
        if comp.claims and not profile.claims(comp.claims):
            log(f"{comp.name}: skipped, profile {profile.name!r} does not claim {comp.claims!r}")
            continue
        if prepare and comp.tier not in prepared:
            prepare(comp.tier)
            prepared.add(comp.tier)
        t0 = time.monotonic()
        applied = manifests.apply(documents(comp, provider=provider), api)
        for gate in comp.ready:
            wait_ready(api, gate)
        log(f"{comp.name}: {len(applied)} objects applied, ready in {time.monotonic() - t0:.1f} s")
        done.append(comp.name)
        _record([comp.name], record)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.stack", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--context")
    parser.add_argument("--profile", default="local", help="install what this profile claims (default: local)")
    parser.add_argument("--tiers", default="all", metavar="all|cached|T1,T2",
                        help="which tiers: all (default), cached (the core plus each tier whose builds are "
                             "cached on this machine), or a comma list such as core,edge")
    parser.add_argument("--provider", choices=("local", "kind"), default="local",
                        help="the cluster's provider: kind loads each tier's images into the kind nodes "
                             "and applies the stack list's providers.kind patches")
    parser.add_argument("components", nargs="*", help="only these stack entries (default: all claimed)")
    args = parser.parse_args(argv)
    from conformance.cluster import tiers as stack_tiers
    from conformance.cluster.components import API_SERVER as LOCAL_API_SERVER
    from conformance.cluster.errors import HarnessError
    try:
        profile = profiles.load(args.profile)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        api = manifests.api_client(args.kubeconfig, args.context)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    local = api.configuration.host.rstrip("/") == LOCAL_API_SERVER and stack_tiers.local_cluster_running()
    prepare, record = ((lambda tier: stack_tiers.prepare(tier)) if local else None), RECORD
    if args.provider == "kind":
        from conformance.cluster import kind
        prepare, record = kind.prepare_tier, kind.STATE / "stack.json"
    try:
        selection = stack_tiers.select(args.tiers)
        print(selection.describe(), flush=True)
        install(api, profile, args.components, tiers=selection.chosen, prepare=prepare, provider=args.provider,
                record=record)
    except HarnessError as exc:
        print(f"error: {exc.problem}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (WaitTimeout, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(selection.describe(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
