"""Writes outside the Kubernetes API (Vault paths, S3 buckets and users, DNS records, ACME
orders) follow the rules of writes inside it.

The profile's `write_allowlist.outside` gives each outside system the one prefix a full run may
write under. Every name a run writes carries that prefix, the run id and an expiry
(`<prefix><run id>-<YYYYmmddHHMM>-<purpose>`), so the sweeper can tell from the name alone whose
it is and when it may go, as it does from the labels and expiry of a Kubernetes object. The
guard here is the outside twin of `conformance.guard`: it refuses a write before the request
leaves, with the same WriteRefused, and a read-only run writes to no outside system at all.

Each system's client is an adapter (`OutsideSystem`, e.g. conformance/outside_vault.py) that only
makes requests. Tests write through `OutsideWrites`, which asks the guard before the request
leaves and registers the undo on the test's cleanup stack right after a create; the sweeper asks
a guard scoped to the dead runs before each delete.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Protocol, TypeVar

from conformance.guard import WriteRefused
from conformance.profile import OutsideWrites as OutsideAllowlist, Profile, ZoneWrites
from conformance.run import CleanupStack, RunIdentity, now, slug

T = TypeVar("T")

# A name's longest part that a system caps: an S3 bucket name, a DNS label, a KV path segment.
NAME_MAX = 63
EXPIRY_FORMAT = "%Y%m%d%H%M"
# What follows the allowed prefix in every name a run writes.
SCOPED = re.compile(r"^(?P<run>[a-z][a-z0-9]{7})-(?P<expires>\d{12})(?:-|/|$)")

# Adapters the sweeper drives, by system: "module:factory", where factory(profile) returns an
# OutsideSystem for that profile, or None when the profile gives the system nothing to reach.
ADAPTERS: dict[str, str] = {"vault": "conformance.outside_vault:from_profile",
                            "dns": "conformance.outside_dns:from_profile",
                            "s3": "conformance.outside_s3:from_profile"}


class OutsideSystem(Protocol):
    """What the cleanup stack and the sweeper need from one outside system's adapter."""

    system: str  # its key under write_allowlist.outside: vault, s3, dns, acme
    kind: str  # what one name is, for messages: "KV path", "bucket", "record", "order"

    def list_names(self, prefix: str) -> Iterable[str]:
        """Names that start with `prefix` (for zone systems: names in the zone `prefix`). More
        is harmless: only names inside the allowed scope are ever considered."""

    def delete(self, name: str) -> None:
        """Remove one name and return once it is gone; a name already gone is not an error."""


@dataclass(frozen=True)
class Scope:
    """Where one system lets a run write, as the profile says it."""

    system: str
    prefix: str
    zone: str | None = None  # zone systems: a name is <label>.<zone>, its label starts with prefix
    source: str = ""  # the profile file, for messages

    @property
    def key(self) -> str:
        return f"write_allowlist.outside.{self.system}.prefix"

    @property
    def allowed(self) -> str:
        """The allowed names in words, e.g. `pcf-*.pcf.test` or `kvv2/platform-conformance/*`."""
        return f"{self.prefix}*.{self.zone}" if self.zone else f"{self.prefix}*"

    @property
    def listing(self) -> str:
        """What an adapter's list_names is given."""
        return self.zone or self.prefix

    @property
    def room(self) -> int:
        """Characters left for the run-scoped part within NAME_MAX."""
        return NAME_MAX - (0 if "/" in self.prefix else len(self.prefix))

    def scoped(self, name: str) -> str | None:
        """The run-scoped part of `name` (what follows the prefix), or None outside the scope."""
        if self.zone is None:
            if not name.startswith(self.prefix) or {".", ".."} & set(name.split("/")):
                return None  # a `..` segment would climb out of the prefix
            return name[len(self.prefix):]
        fqdn, suffix = name.lower().rstrip("."), "." + self.zone
        if not fqdn.endswith(suffix):
            return None
        label = fqdn[: -len(suffix)].rsplit(".", 1)[-1]  # the label directly below the zone
        return label[len(self.prefix):] if label.startswith(self.prefix) else None

    def build(self, scoped: str) -> str:
        return f"{self.prefix}{scoped}.{self.zone}" if self.zone else self.prefix + scoped


def scopes(profile: Profile) -> dict[str, Scope]:
    """Each system the profile lets a run write to, by name."""
    writes = profile.write_allowlist.outside
    out = {}
    for f in dataclasses.fields(writes):
        section = getattr(writes, f.name)
        if section is not None:
            zone = section.zone if isinstance(section, ZoneWrites) else None
            out[f.name] = Scope(f.name, section.prefix, zone, profile.source or profile.name)
    return out


def systems() -> tuple[str, ...]:
    """Every outside system a profile can name."""
    return tuple(f.name for f in dataclasses.fields(OutsideAllowlist))


def owner(scoped: str) -> tuple[str, dt.datetime] | None:
    """The run id and expiry at the start of a name's run-scoped part, or None."""
    m = SCOPED.match(scoped)
    if not m:
        return None
    try:
        expires = dt.datetime.strptime(m["expires"], EXPIRY_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return m["run"], expires


@dataclass(frozen=True)
class OutsideRequest:
    """One write to an outside system, as the guard sees it."""

    verb: str
    system: str
    name: str

    def __str__(self) -> str:
        return f"{self.verb} {self.system} {self.name!r}"


@dataclass(frozen=True)
class OutsideGuard:
    """The outside rules of one run: its mode, the run ids it may write as, each system's scope.

    The sweeper's guard carries the ids of the dead runs it removes instead of its own."""

    mode: str
    run_ids: tuple[str, ...]
    scopes: Mapping[str, Scope]
    source: str = ""

    @classmethod
    def for_profile(cls, mode: str, run_ids: Iterable[str], profile: Profile) -> OutsideGuard:
        return cls(mode, tuple(run_ids), scopes(profile), profile.source or profile.name)

    def scope(self, system: str, request: OutsideRequest | None = None) -> Scope:
        """The system's scope; refuses a system the profile gives no prefix."""
        request = request or OutsideRequest("write", system, "")
        if system not in systems():
            raise WriteRefused(request, f"{system!r} is not an outside system the profile can name "
                                        f"(known: {', '.join(systems())})")
        if system not in self.scopes:
            raise WriteRefused(request, f"profile {self.source} declares no write_allowlist.outside."
                                        f"{system}, so a run writes nothing to {system}; add a prefix "
                                        "there to allow it")
        return self.scopes[system]

    def check(self, system: str, name: str, verb: str = "write") -> str:
        """The rule that allows writing `name`; raises WriteRefused when none does."""
        request = OutsideRequest(verb, system, name)
        if self.mode != "full":
            raise WriteRefused(request, "this is a read-only run, which writes to no outside system; "
                                        "rerun with --mode full to allow writes")
        scope = self.scope(system, request)
        scoped = scope.scoped(name)
        if scoped is None:
            raise WriteRefused(request, f"the name is not under {system}'s allowed prefix "
                                        f"{scope.allowed!r} ({scope.key} in profile {self.source})")
        found = owner(scoped)
        if found is None or found[0] not in self.run_ids:
            runs = " or ".join(self.run_ids) or "(none)"
            raise WriteRefused(request, f"the name does not carry the run id {runs} and an expiry "
                                        f"right after {scope.prefix!r}; build it with "
                                        "OutsideWrites.name(system, purpose)")
        return f"{name!r} is under {scope.allowed!r} and carries run {found[0]}"


def name(run: RunIdentity, scope: Scope, purpose: str, at: dt.datetime | None = None) -> str:
    """<prefix><run id>-<expiry>-<purpose>, the purpose cut to fit the system's limit."""
    expires = ((at or now()) + run.max_age).astimezone(dt.timezone.utc).strftime(EXPIRY_FORMAT)
    scoped = f"{run.run_id}-{expires}-{slug(purpose)}"[: scope.room].rstrip("-")
    return scope.build(scoped)


class OutsideWrites:
    """One run's door to outside systems: builds its names, asks the guard, owes the cleanups."""

    def __init__(self, run: RunIdentity, guard: OutsideGuard, cleanups: CleanupStack):
        self.run, self.guard, self.cleanups = run, guard, cleanups

    def name(self, system: str, purpose: str, at: dt.datetime | None = None) -> str:
        return name(self.run, self.guard.scope(system), purpose, at)

    def write(self, system: str, name: str, call: Callable[[], T], verb: str = "write") -> T:
        """Make one write (a put, an update, a record change) once the guard allows it."""
        self.guard.check(system, name, verb)
        return call()

    def create(self, adapter: OutsideSystem, name: str, call: Callable[[], T]) -> T:
        """Create `name` through `call`, then owe its removal to the cleanup stack."""
        result = self.write(adapter.system, name, call, "create")
        self.cleanups.push(f"{adapter.system} {adapter.kind} {name}",
                           lambda: self.write(adapter.system, name, lambda: adapter.delete(name), "delete"))
        return result


def adapters(profile: Profile, registry: Mapping[str, str] | None = None) -> dict[str, OutsideSystem]:
    """The adapters the profile gives something to reach, from `registry` (default ADAPTERS)."""
    out = {}
    for system, spec in (ADAPTERS if registry is None else registry).items():
        module, _, factory = spec.partition(":")
        adapter = getattr(importlib.import_module(module), factory)(profile)
        if adapter is not None:
            out[system] = adapter
    return out


def describe(profile: Profile) -> list[str]:
    """What a full run may write outside the cluster, one line per system, for `--plan`."""
    found = scopes(profile)
    if not found:
        return ["outside the cluster: nothing (the profile declares no write_allowlist.outside)"]
    return [f"outside the cluster, {s.system}: names {s.build('<run id>-<expiry>-*')} "
            f"({s.key})" for s in found.values()]
