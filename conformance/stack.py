"""Install the pinned stack (manifests/stack.yaml) through the one loader, behind readiness gates.

Idempotent: server-side apply converges objects that exist already, and the gates return at
once when a component is ready. Adding a component means adding an entry and its overlays.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes.dynamic import DynamicClient

from conformance import InputError, manifests
from conformance.waiting import WaitTimeout, wait_for
from conformance import profile as profiles

STACK = Path(__file__).resolve().parents[1] / "manifests" / "stack.yaml"


@dataclass(frozen=True)
class Component:
    """One installable entry of the stack list."""

    name: str
    manifests: tuple[str, ...]
    images: tuple[str, ...]
    ready: tuple[dict, ...]
    claims: str | None  # the profile component it provides; None: the suite's own, always installed


def components(stack: Path = STACK) -> list[Component]:
    data = yaml.safe_load(stack.read_text())
    return [Component(c["name"], tuple(c.get("manifests", ())), tuple(c.get("images", ())),
                      tuple(c.get("ready", ())), c.get("claims")) for c in data["components"]]


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


def install(api, profile: profiles.Profile, names: list[str] | None = None, log=print) -> None:
    """Install the entries the profile claims (or just `names`), in stack order."""
    base = STACK.parent
    for comp in components():
        if names and comp.name not in names:
            continue
        if comp.claims and not profile.claims(comp.claims):
            log(f"{comp.name}: skipped, profile {profile.name!r} does not claim {comp.claims!r}")
            continue
        t0 = time.monotonic()
        applied = manifests.apply([d for m in comp.manifests for d in manifests.read([base / m])], api)
        for gate in comp.ready:
            wait_ready(api, gate)
        log(f"{comp.name}: {len(applied)} objects applied, ready in {time.monotonic() - t0:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.stack", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--context")
    parser.add_argument("--profile", default="local", help="install what this profile claims (default: local)")
    parser.add_argument("components", nargs="*", help="only these stack entries (default: all claimed)")
    args = parser.parse_args(argv)
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
    try:
        install(api, profile, args.components)
    except (WaitTimeout, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
