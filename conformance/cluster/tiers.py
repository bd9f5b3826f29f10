"""Tiers of the stack list: the core always, each heavier group of components on its own.

Every entry of manifests/stack.yaml (program, wheel, image, component) names its tier (`core`
unless it says otherwise). A tier is prepared on the local cluster as one unit: its programs
built or unpacked, its images built and loaded into the node's runtime, and its host-side
services started under a supervisor of its own. A tier counts as cached when every program
and wheel it needs is already in the machine cache, which is what lets CI run the heavy
tiers only when a cold build would not have to pay for them.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from conformance.cluster import build, host, stack_images
from conformance.cluster.errors import HarnessError

CORE = "core"


def _tier(entry: dict) -> str:
    return entry.get("tier", CORE)


def names(stack: dict | None = None) -> list[str]:
    """Every tier of installable components, the core first, then in stack order. (A program may
    name a tier no component has, e.g. the alternative runtime: `cluster up` builds that.)"""
    stack = stack or build.load_stack()
    out = [CORE]
    for entry in stack["components"]:
        if _tier(entry) not in out:
            out.append(_tier(entry))
    return out


def with_needs(tier: str, stack: dict | None = None) -> tuple[str, ...]:
    """The core, the tiers `tier` builds on (the stack list's `tier_needs`), and `tier` itself."""
    stack = stack or build.load_stack()
    return tuple(dict.fromkeys((CORE, *stack.get("tier_needs", {}).get(tier, ()), tier)))


def missing(tier: str, stack: dict | None = None) -> list[str]:
    """The programs and wheels of the tier, and of the tiers it builds on but the core, not yet
    in the machine cache."""
    stack = stack or build.load_stack()
    wanted = [*build.programs(stack).values(), *build.wheels(stack).values()]
    of = set(with_needs(tier, stack)) - {CORE} | {tier}
    return [f"{p.name} {p.version}" for p in wanted if p.tier in of and not p.built]


@dataclass(frozen=True)
class Selection:
    """The tiers a stack install covers, and each one left out with why."""

    chosen: tuple[str, ...]
    skipped: dict[str, str]

    def describe(self) -> str:
        lines = [f"tiers run: {', '.join(self.chosen)}"]
        lines += [f"tier skipped: {tier} ({why})" for tier, why in self.skipped.items()]
        return "\n".join(lines)


def select(spec: str, stack: dict | None = None) -> Selection:
    """`all`, `cached` (the core plus every tier whose builds are cached), or a comma list."""
    stack = stack or build.load_stack()
    known = names(stack)
    if spec == "all":
        return Selection(tuple(known), {})
    if spec == "cached":
        chosen, skipped = [], {}
        for tier in known:
            lacking = missing(tier, stack) if tier != CORE else []
            if lacking:
                skipped[tier] = (f"not built on this machine: {', '.join(lacking)}; "
                                 f"build it with `nox -s stack -- --tiers={tier}`")
            else:
                chosen.append(tier)
        return Selection(tuple(chosen), skipped)
    wanted = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in known]
    if unknown or not wanted:
        raise HarnessError(f"--tiers={spec}: unknown tier {', '.join(unknown) or '(none given)'}",
                           fix=f"use all, cached, or a comma list of: {', '.join(known)}")
    return Selection(tuple(t for t in known if t in wanted),
                     {t: "not asked for" for t in known if t not in wanted})


def services(tier: str, stack: dict | None = None) -> list:
    """The host-side service modules the tier's components name, in stack order."""
    stack = stack or build.load_stack()
    found: list[str] = []
    for comp in stack["components"]:
        if _tier(comp) == tier:
            found += [s for s in comp.get("services", ()) if s not in found]
    return [importlib.import_module(f"conformance.cluster.{name}") for name in found]


def prepare(tier: str, log=print) -> None:
    """Build, unpack and load what the tier needs on the local cluster, and start its services."""
    from conformance.cluster import local

    if tier == CORE:
        return  # the cluster's own bring-up prepares the core
    progs = build.build_all(log=log, tiers=(tier,))
    host.ensure_packages(log, extra=stack_images.packages((tier,)))
    archives = stack_images.build_all(progs, log=log, tiers=(tier,))
    if archives:
        stack_images.load_all(progs, archives, log=log)
    wanted = services(tier)
    if wanted:
        local.start_services(tier, wanted, log=log)


def local_cluster_running() -> bool:
    from conformance.cluster import local

    return bool(local.status())
