"""What a profile claims, and whether a run checked each claim.

A profile claims components (`components.<name>.claimed: true`) and, through some of its other
fields, capabilities: facts users rely on that a component's name alone does not carry (the
platform is dual-stack, the CNI replaces kube-proxy, each StorageClass or ClusterIssuer it
lists). A test says which capability it checks with a marker, checked when it is collected:

    @pytest.mark.covers("cluster/dual-stack")                    # a capability without names
    @pytest.mark.covers("storage/class")                         # every StorageClass the profile lists
    @pytest.mark.covers("storage/class:rbd-nvme")                # one of them
    @pytest.mark.covers("storage/class", by="storage_class")     # the one named by that parameter

A claimed component or capability none of whose promises ran is *unchecked*: nothing stands
behind it, so a run with one cannot pass. A claim whose promises the run chose not to select
(`-m`, `-k`, named paths, a read-only run) is *not selected* instead, and the run says it was
narrowed.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from conformance.profile import Profile

MARKER = "covers(kind, by=None)"
PASSED, FAILED, UNCHECKED, NOT_SELECTED = "passed", "failed", "unchecked", "not-selected"
STATES = (PASSED, FAILED, UNCHECKED, NOT_SELECTED)


@dataclass(frozen=True)
class Kind:
    """A kind of capability: the profile field that claims it, and whether it is one per name."""

    name: str  # the marker's argument, e.g. "storage/class"
    field: str  # the profile key path, e.g. "components.storage.storage_classes"
    component: str | None  # claimed only while this component is claimed; None for cluster facts
    named: bool = False  # one claim per name the field lists, else one claim when `claimed(value)`
    claimed: Callable[[Any], bool] = bool


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("cluster/dual-stack", "cluster.dual_stack", None),
    Kind("cluster/kube-proxy-replacement", "cluster.kube_proxy", None, claimed=lambda v: v == "replaced"),
    Kind("networking/nodeports-from-outside", "components.networking.nodeports_reachable", "networking"),
    Kind("networking/egress-world", "components.networking.world_target", "networking"),
    Kind("dns/upstream-forwarder", "components.dns.external_name", "dns"),
    Kind("metallb/pool", "components.metallb.pools", "metallb", named=True),
    Kind("cert-manager/issuer", "components.cert_manager.cluster_issuers", "cert_manager", named=True),
    Kind("storage/class", "components.storage.storage_classes", "storage", named=True),
    Kind("storage/snapshot-class", "components.storage.snapshot_classes", "storage", named=True),
    Kind("storage/rwx-class", "components.storage.rwx_classes", "storage", named=True),
    Kind("storage/expandable-class", "components.storage.expandable_classes", "storage", named=True),
    Kind("ceph/rook", "components.ceph.rook", "ceph"),
    Kind("argocd/app-of-apps", "components.argocd.app_of_apps", "argocd"),
)}


@dataclass(frozen=True)
class Claim:
    """One thing the profile claims: a component (`metallb`) or a capability (`storage/class:rbd-nvme`)."""

    id: str
    kind: str  # "component", or the capability kind
    source: str  # the profile field that makes the claim


def _value(profile: Profile, path: str) -> Any:
    value: Any = profile
    for key in path.split("."):
        value = getattr(value, key, None) if value is not None else None
    return value


def _names(kind: Kind, profile: Profile) -> tuple[str, ...]:
    """The claim ids of one kind on this profile."""
    if kind.component and not profile.claims(kind.component):
        return ()
    value = _value(profile, kind.field)
    if kind.named:
        return tuple(f"{kind.name}:{n}" for n in value or ())
    return (kind.name,) if kind.claimed(value) else ()


def of(profile: Profile) -> tuple[Claim, ...]:
    """Every claim of the profile: its claimed components, then the capabilities its fields claim."""
    out = [Claim(name, "component", f"components.{name}.claimed") for name in profile.claimed]
    out += [Claim(cid, k.name, k.field) for k in KINDS.values() for cid in _names(k, profile)]
    return tuple(out)


def source(claim_id: str) -> str:
    """The profile field that claims a capability, e.g. `cluster.dual_stack`."""
    return KINDS[claim_id.partition(":")[0]].field


def marker_problems(args: tuple, kwargs: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """What is wrong with one `covers` marker on a test whose parameters are `params`."""
    usage = ('use @pytest.mark.covers("<kind>") or covers("<kind>", by="<parameter>"), '
             f"with a kind of: {', '.join(KINDS)}")
    if len(args) != 1 or not isinstance(args[0], str) or set(kwargs) - {"by"}:
        return [f"covers{args!r} is malformed; {usage}"]
    kind, _, name = args[0].partition(":")
    if kind not in KINDS:
        return [f"covers({args[0]!r}) names no capability kind; {usage}"]
    by = kwargs.get("by")
    found = []
    if (name or by is not None) and not KINDS[kind].named:
        found.append(f"covers({args[0]!r}): {kind} is claimed as a whole and has no names; drop the name and by=")
    if by is not None and by not in params:
        found.append(f"covers({args[0]!r}, by={by!r}): the test has no parameter {by!r}; "
                     "name one of its parametrize arguments")
    if name and by is not None:
        found.append(f"covers({args[0]!r}, by={by!r}) gives the name twice; give it in the kind or in by=")
    return found


def covered(profile: Profile, args: tuple, kwargs: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[str, ...]:
    """The claim ids a valid `covers` marker stands for on this profile."""
    kind, _, name = args[0].partition(":")
    if kwargs.get("by") is not None:
        name = str(params[kwargs["by"]])
    if not KINDS[kind].named:
        return (kind,)
    if name:
        return (f"{kind}:{name}",)
    return _names(KINDS[kind], profile)


class Check(Protocol):
    """One promise check as the accounting sees it (a summary.PromiseResult, or a planned test)."""

    component: str
    covers: tuple[str, ...]
    outcome: str  # passed, failed, error, waived, skipped; or "planned" for a test a plan will run
    reason: str | None
    narrowed: str | None  # why the run chose not to select it (a read-only run), else None


@dataclass(frozen=True)
class Status:
    """How a run stands on one claim."""

    claim: Claim
    state: str  # one of STATES
    ran: int
    passed: int
    failed: int
    waived: int
    skipped: int
    why: str | None = None  # for unchecked and not-selected claims

    def to_dict(self) -> dict:
        return {"id": self.claim.id, "kind": self.claim.kind, "source": self.claim.source, "state": self.state,
                "promises": {"ran": self.ran, "passed": self.passed, "failed": self.failed,
                             "waived": self.waived, "skipped": self.skipped},
                "why": self.why}


def account(claims: Iterable[Claim], checks: Iterable[Check], narrowed_by: Sequence[str] = ()) -> list[Status]:
    """Each claim's state from the checks that cover it. `narrowed_by` says how the command line
    narrowed the selection (`-m dns`, paths); a claim that selection left no check for is then
    not selected rather than unchecked."""
    checks, claims = list(checks), list(claims)
    claimed = {c.id for c in claims}

    def bears_on(check: Check, claim: Claim) -> bool:
        if claim.kind != "component":
            return claim.id in check.covers
        # a test of capabilities none of which is claimed checks nothing the profile promises
        return check.component == claim.id and (not check.covers or not claimed.isdisjoint(check.covers))

    out = []
    for claim in claims:
        mine = [c for c in checks if bears_on(c, claim)]
        scope = [c for c in mine if not c.narrowed]
        ran = [c for c in scope if c.outcome not in ("skipped", None)]
        failed = sum(c.outcome in ("failed", "error") for c in ran)
        counts = dict(ran=len(ran), passed=sum(c.outcome == "passed" for c in ran), failed=failed,
                      waived=sum(c.outcome == "waived" for c in ran), skipped=sum(c.outcome == "skipped" for c in mine))
        if ran:
            out.append(Status(claim, FAILED if failed else PASSED, **counts))
        elif mine and not scope:
            why = "; ".join(dict.fromkeys(c.narrowed for c in mine))
            out.append(Status(claim, NOT_SELECTED, **counts, why=f"{why} ({len(mine)} promise check(s))"))
        elif not mine and narrowed_by:
            out.append(Status(claim, NOT_SELECTED, **counts,
                              why=f"no selected promise covers it (narrowed by {', '.join(narrowed_by)})"))
        elif not mine:
            out.append(Status(claim, UNCHECKED, **counts, why="no promise covers it: no suite checks it yet"))
        else:
            reasons = "; ".join(dict.fromkeys(c.reason or "did not run" for c in scope))
            out.append(Status(claim, UNCHECKED, **counts, why=f"none of its {len(scope)} promise check(s) ran: {reasons}"))
    return out


def render(statuses: Sequence[Status]) -> str:
    """A table of claims: state and promise counts, then why each unchecked one is."""
    head = ("claim", "state", "ran", "passed", "failed", "waived", "skipped")
    rows = [head] + [(s.claim.id, s.state.upper() if s.state == UNCHECKED else s.state, str(s.ran), str(s.passed),
                      str(s.failed), str(s.waived), str(s.skipped)) for s in statuses]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for title, state in (("unchecked", UNCHECKED), ("not selected", NOT_SELECTED)):
        picked = [s for s in statuses if s.state == state]
        if picked:
            lines.append(f"\n{title}:")
            lines += [f"  {s.claim.id} ({s.claim.source}): {s.why}" for s in picked]
    return "\n".join(lines)
