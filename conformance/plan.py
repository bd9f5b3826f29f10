"""What a run will do on a platform: which promises run, which skip and why, what it may create.

The same `decide` drives the real run's skips and `--plan`, so the plan cannot drift from what
happens. Deciding needs only the profile and the tests' markers, never the cluster.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence

from conformance import claims as claiming, outside
from conformance.guard import CONTROL_NAMESPACE
from conformance.profile import Profile
from conformance.run import LEASE_NAME, MAX_AGE, RUN_LABEL

# Markers that say a test writes to the cluster, and so cannot run in read-only mode.
WRITE_MARKERS = ("writes", "disruptive", "pool_exhaustion", "production_certificate")


@dataclass(frozen=True)
class Item:
    """A collected test, as far as selection cares."""

    nodeid: str
    component: str
    promise: str
    markers: frozenset[str]
    covers: tuple[str, ...] = ()  # the capability claims it checks (conformance.claims)


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str = ""
    narrowed: str | None = None  # the skip is the run's choice of scope (its mode), not the profile's

# How a read-only run narrows what it checks, in the summary's and the verdict's words.
READ_ONLY = "read-only run (--mode=read-only selects no promise that writes)"


def decide(item: Item, profile: Profile, mode: str) -> Decision:
    """Run or skip one test on this profile in this mode; a skip says why, naming the setting."""
    where = f"profile {profile.name} ({profile.source})" if profile.source else f"profile {profile.name}"
    policy = profile.policy
    if not profile.claims(item.component):
        return Decision(False, f"component {item.component} is not claimed by {where}")
    if item.covers and {c.id for c in claiming.of(profile)}.isdisjoint(item.covers):
        fields = ", ".join(dict.fromkeys(claiming.source(c) for c in item.covers))
        return Decision(False, f"{', '.join(item.covers)} is not claimed by {where} ({fields})")
    if "disruptive" in item.markers and not policy.allow_disruptive:
        return Decision(False, f"disruptive tests are not allowed by {where} (policy.allow_disruptive)")
    if "pool_exhaustion" in item.markers and not policy.allow_pool_exhaustion:
        return Decision(False, f"exhausting an address pool is not allowed by {where} "
                               "(policy.allow_pool_exhaustion)")
    if "production_certificate" in item.markers and not policy.allow_new_production_certificates:
        return Decision(False, f"new certificates from a production issuer are not allowed by {where} "
                               "(policy.allow_new_production_certificates)")
    if mode == "read-only" and item.markers.intersection(WRITE_MARKERS):
        return Decision(False, "read-only run: this promise needs writes (run with --mode full)", READ_ONLY)
    return Decision(True)


def may_create(profile: Profile, mode: str) -> list[str]:
    """What a run in `mode` may create on this platform, in the words of the write guard."""
    if mode == "read-only":
        return ["nothing: this is a read-only run, and the write guard refuses every write before "
                "it leaves (no lease either)"]
    hours = MAX_AGE.total_seconds() / 3600
    lines = [f"namespaces named pcf-<run id>-*, and anything inside them; each object labelled "
             f"{RUN_LABEL}=<run id> with an expiry {hours:g} h after its creation",
             f"in {CONTROL_NAMESPACE}: the Lease {LEASE_NAME} and the run's ConfigMaps"]
    lines += [f"cluster-scoped: {r} (write_allowlist.cluster_scoped)" for r in profile.write_allowlist.cluster_scoped]
    lines += [f"{w.resource} in namespace {w.namespace} (write_allowlist.namespaced)"
              for w in profile.write_allowlist.namespaced]
    lines += outside.describe(profile)
    return lines


@dataclass(frozen=True)
class _Planned:
    """A test as the claim accounting sees it before the run: it will run, or it skips."""

    component: str
    covers: tuple[str, ...]
    outcome: str
    reason: str | None
    narrowed: str | None


def claims(decided: Iterable[tuple[Item, Decision]], profile: Profile,
           selection: Sequence[str] = ()) -> list[claiming.Status]:
    """Each claim's state as far as it can be known before the run: a claim no selected test
    will run for is unchecked now (a test can still skip while it runs)."""
    planned = [_Planned(i.component, i.covers, "planned" if d.run else "skipped", d.reason or None, d.narrowed)
               for i, d in decided]
    return claiming.account(claiming.of(profile), planned, selection)


def render(decided: Iterable[tuple[Item, Decision]], profile: Profile, mode: str,
           today: dt.date | None = None, selection: Sequence[str] = ()) -> str:
    """The plan as text, for `--plan`; `selection` says how the command line narrowed it."""
    decided = list(decided)
    today = today or dt.date.today()
    runs = [(i, d) for i, d in decided if d.run]
    skips = [(i, d) for i, d in decided if not d.run]
    out = [f"plan for profile {profile.name} ({profile.source}), mode {mode}",
           f"claimed components: {', '.join(profile.claimed) or '(none)'}", "",
           f"will run ({len(runs)}):"]
    out += [f"  {i.promise:48} {i.nodeid}" for i, _ in runs] or ["  (nothing)"]
    out += ["", f"will skip ({len(skips)}):"]
    out += [f"  {i.promise:48} {i.nodeid}\n      {d.reason}" for i, d in skips] or ["  (nothing)"]
    statuses = claims(decided, profile, selection)
    unchecked = [s for s in statuses if s.state == claiming.UNCHECKED]
    out += ["", "claims (the promise checks that will run for each):"]
    width = max((len(s.claim.id) for s in statuses), default=0)
    out += [f"  {s.claim.id:{width}}  {s.ran} will run" + (f"; {s.state}: {s.why}" if s.why else "")
            for s in statuses]
    if selection:
        out.append(f"  the run is narrowed by {', '.join(selection)}")
    out += ["", f"no promise will check ({len(unchecked)}): " + (
        ", ".join(s.claim.id for s in unchecked) + "; the run would end incomplete (exit 3)" if unchecked
        else "(nothing: every selected claim has a promise that will run)")]
    out += ["", "may create:"] + [f"  - {line}" for line in may_create(profile, mode)]
    if profile.waivers:
        out += ["", "waivers:"]
        out += [f"  {w.promise}: until {w.expires} ({w.reason})" + ("" if w.active(today) else " EXPIRED, ignored")
                for w in profile.waivers]
    return "\n".join(out) + "\n"
