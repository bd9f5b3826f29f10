"""The sweeper: removes what dead runs left, and anything past its expiry.

A run is dead when it does not hold a live lease (the lease is stale or gone). Only objects
that carry both the managed-by label and a run label are ever considered, so nothing the
suite did not create can be taken. Outside the Kubernetes API (Vault, S3, DNS, ACME), names
carry the run id and expiry instead, under the profile's `write_allowlist.outside` prefixes. The
sweeper lists first, decides on that snapshot, and only then widens its write guards to exactly
the runs it is removing.

    python -m conformance.sweep --profile local [--kubeconfig ...] [--context ...] [--dry-run]

Exit codes: 0 everything selected is gone, 1 something could not be removed, 2 bad input.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass
from typing import Callable, Iterable

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from conformance import InputError, kube, outside, profile as profiles, run as runs
from conformance.guard import CONTROL_NAMESPACE, WriteGuard
from conformance.waiting import wait_for

MANAGED = f"{runs.MANAGED_BY_LABEL}={runs.MANAGED_BY}"
# Upstream's e2e (conformance.referee) labels every namespace it makes with both (its
# framework.go and util.go); they carry no label of ours.
E2E_LABELS = ("e2e-framework", "e2e-run")


@dataclass(frozen=True)
class Found:
    """An object the sweeper looked at, reduced to what the decision needs."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    run: str | None
    expires: dt.datetime | None

    @classmethod
    def of(cls, obj: dict) -> Found:
        meta = obj.get("metadata") or {}
        labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
        try:
            expires = runs.parse_time(notes[runs.EXPIRES_ANNOTATION]) if runs.EXPIRES_ANNOTATION in notes else None
        except ValueError:
            expires = None  # unreadable: the run label alone decides
        managed = labels.get(runs.MANAGED_BY_LABEL) == runs.MANAGED_BY
        return cls(api_version=obj.get("apiVersion", ""), kind=obj.get("kind", ""), name=meta.get("name", ""),
                   namespace=meta.get("namespace"), run=labels.get(runs.RUN_LABEL) if managed else None,
                   expires=expires)

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.kind} {self.name}{where}"


@dataclass(frozen=True)
class Doomed:
    found: Found | OutsideName
    reason: str


def select(objects: Iterable[dict], live_run: str | None, at: dt.datetime) -> list[Doomed]:
    """What to remove: objects of any run but the live one, and anything past its expiry."""
    doomed = []
    for obj in objects:
        found = Found.of(obj)
        if found.run is None:
            continue  # not labelled by a run: never ours to take
        reason = why_doomed(found.run, found.expires, live_run, at)
        if reason:
            doomed.append(Doomed(found, reason))
    return doomed


def why_doomed(run: str, expires: dt.datetime | None, live_run: str | None, at: dt.datetime) -> str | None:
    """Why an object or name of `run` must go, or None while it may stay. An upgrade gate's
    sentinels outlive every run: only their own expiry takes them."""
    if expires is not None and at >= expires:
        return f"expired at {runs.format_time(expires)}"
    if runs.is_gate(run):
        return None
    if run != live_run:
        why = f"the live lease is held by {live_run}" if live_run else "no run holds a live lease"
        return f"run {run} is dead ({why})"
    return None


# --- against a cluster -----------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """A resource to list: by plural name and group, in one namespace or cluster-wide."""

    resource: str  # resource or resource.group, as in the write allowlist
    namespace: str | None = None

    def lookup(self, dyn: DynamicClient):
        """The served resource, at its group's preferred version."""
        plural, _, group = self.resource.partition(".")
        found = list(dyn.resources.search(name=plural, group=group))
        if not found:
            raise ResourceNotFoundError(f"no resource {self.resource} is served")
        return next((r for r in found if getattr(r, "preferred", False)), found[0])


def kinds(profile: profiles.Profile, control_namespace: str = CONTROL_NAMESPACE) -> list[Kind]:
    """Where a run's objects can be: its namespaces (and all inside them), the control
    namespace, and what the profile's allowlist lets it create elsewhere."""
    allow = profile.write_allowlist
    return ([Kind("configmaps", control_namespace), Kind("leases.coordination.k8s.io", control_namespace)]
            + [Kind(w.resource, w.namespace) for w in allow.namespaced]
            + [Kind(r) for r in allow.cluster_scoped]
            + [Kind("namespaces")])


def collect(dyn: DynamicClient, where: list[Kind], selector: str = MANAGED) -> list[dict]:
    """Every object labelled by a run among `where`; kinds this cluster does not serve are skipped."""
    found = []
    for kind in where:
        try:
            resource = kind.lookup(dyn)
        except ResourceNotFoundError:
            continue
        listed = resource.get(namespace=kind.namespace, label_selector=selector).to_dict()
        for item in listed.get("items") or []:
            item.setdefault("apiVersion", resource.group_version)
            item.setdefault("kind", resource.kind)
            found.append(item)
    return found


def remove(dyn: DynamicClient, doomed: list[Doomed], report: Callable[[str], None] = print) -> list[str]:
    """Delete everything doomed (namespaces last), then wait for each to be gone; returns
    what could not be removed. A failure on one object never stops the others."""
    order = sorted(doomed, key=lambda d: (d.found.kind == "Namespace", d.found.namespace is None))
    pending, failures = [], []
    for d in order:
        f = d.found
        try:
            resource = dyn.resources.get(api_version=f.api_version, kind=f.kind)
            resource.delete(name=f.name, namespace=f.namespace)
            pending.append((d, resource))
        except NotFoundError:
            report(f"gone already: {f} ({d.reason})")
        except Exception as exc:  # noqa: BLE001 - reported, the rest still go
            failures.append(f"{f}: {type(exc).__name__}: {exc}")
    for d, resource in pending:
        f = d.found
        try:
            wait_for(f"{f} to be gone", lambda: _exists(resource, f), until=lambda there: not there,
                     timeout="namespace_deleted" if f.kind == "Namespace" else "object_deleted")
            report(f"removed {f} ({d.reason})")
        except AssertionError as exc:
            failures.append(f"{f}: {exc}")
    return failures


def _exists(resource, found: Found) -> bool:
    try:
        resource.get(name=found.name, namespace=found.namespace)
    except NotFoundError:
        return False
    return True


def live_run(api: k8s.ApiClient, at: dt.datetime, namespace: str = CONTROL_NAMESPACE) -> str | None:
    """The run holding a live lease, if any."""
    try:
        lease = k8s.CoordinationV1Api(api).read_namespaced_lease(runs.LEASE_NAME, namespace)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return runs.LeaseView.of(api.sanitize_for_serialization(lease)).live_holder(at)


def select_e2e(namespaces: Iterable[dict], live_run: str | None) -> list[Doomed]:
    """Upstream e2e's namespaces (both its labels), unless a referee run holds the live lease:
    the referee holds the full run's lease, so any other holder, or none, means they are left over."""
    if runs.is_referee(live_run):
        return []
    why = f"the live lease is held by {live_run}, not a referee run" if live_run else "no run holds a live lease"
    doomed = []
    for ns in namespaces:
        meta = ns.get("metadata") or {}
        labels = meta.get("labels") or {}
        if all(label in labels for label in E2E_LABELS):
            found = Found("v1", "Namespace", meta.get("name", ""), None, labels["e2e-run"], None)
            doomed.append(Doomed(found, f"upstream e2e namespace of e2e run {labels['e2e-run']} ({why})"))
    return doomed


def scope(doomed: list[Doomed], profile: profiles.Profile, exact: Iterable[str] = ()) -> WriteGuard:
    """A guard that lets the sweeper delete in exactly the runs it is removing, and the `exact`
    namespaces named (upstream e2e's, which carry no run prefix)."""
    prefixes = {runs.prefix(d.found.run) for d in doomed if d.found.run and runs.RUN_ID.match(d.found.run)}
    return WriteGuard.for_profile("full", sorted(prefixes | set(exact)), profile.write_allowlist)


# --- outside the Kubernetes API --------------------------------------------------------------

@dataclass(frozen=True)
class OutsideName:
    """A name in an outside system, with the run and expiry it carries."""

    system: str
    kind: str
    name: str
    run: str
    expires: dt.datetime

    def __str__(self) -> str:
        return f"{self.system} {self.kind} {self.name}"


def select_outside(adapter: outside.OutsideSystem, scope: outside.Scope, names: Iterable[str],
                   live_run: str | None, at: dt.datetime) -> list[Doomed]:
    """The same choice as `select`, from names alone: a name outside the profile's prefix, or
    without a run id and expiry after it, was not made by a run and is never taken."""
    doomed = []
    for name in names:
        scoped = scope.scoped(name)
        owned = outside.owner(scoped) if scoped is not None else None
        if owned is None:
            continue
        found = OutsideName(adapter.system, adapter.kind, name, *owned)
        reason = why_doomed(found.run, found.expires, live_run, at)
        if reason:
            doomed.append(Doomed(found, reason))
    return doomed


def sweep_outside(adapters: dict[str, outside.OutsideSystem], profile: profiles.Profile,
                  live_run: str | None, at: dt.datetime, dry_run: bool,
                  report: Callable[[str], None] = print) -> list[str]:
    """List, choose and remove dead runs' names in each outside system; returns the failures.
    Each delete passes a guard scoped to exactly the runs being removed."""
    found = outside.scopes(profile)
    failures = []
    for system, adapter in adapters.items():
        try:
            doomed = select_outside(adapter, found[system], adapter.list_names(found[system].listing),
                                    live_run, at)
        except Exception as exc:  # noqa: BLE001 - one system failing must not stop the others
            failures.append(f"{system}: listing failed: {type(exc).__name__}: {exc}")
            continue
        guard = outside.OutsideGuard.for_profile("full", sorted({d.found.run for d in doomed}), profile)
        for d in doomed:
            if dry_run:
                report(f"would remove {d.found} ({d.reason})")
                continue
            try:
                guard.check(system, d.found.name, "delete")
                adapter.delete(d.found.name)
                report(f"removed {d.found} ({d.reason})")
            except Exception as exc:  # noqa: BLE001 - reported, the rest still go
                failures.append(f"{d.found}: {type(exc).__name__}: {exc}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="local", help="profile name or path (default: local)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    parser.add_argument("--as", dest="impersonate")
    parser.add_argument("--dry-run", action="store_true", help="print what would go, remove nothing")
    args = parser.parse_args(argv)
    try:
        profile = profiles.load(args.profile, args.overrides)
        target = kube.resolve_target(args.kubeconfig, args.context, args.impersonate,
                                     profile.identities.full, "full")
        api = kube.connect(target, WriteGuard("read-only"))
        kube.check_reachable(api, target)
    except InputError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 2
    at = runs.now()
    live = live_run(api, at)
    dyn = DynamicClient(api)
    doomed = select(collect(dyn, kinds(profile)), live, at)
    # Only where the profile lets upstream's e2e run are its namespaces ever ours to take.
    e2e = select_e2e(collect(dyn, [Kind("namespaces")], ",".join(E2E_LABELS)), live) \
        if profile.policy.allow_upstream_e2e else []
    doomed += e2e
    print(f"sweep: live run {live or '(none)'}; {len(doomed)} object(s) to remove")
    if args.dry_run:
        for d in doomed:
            print(f"would remove {d.found} ({d.reason})")
        failures = []
    else:
        api.guard = scope(doomed, profile, exact=[d.found.name for d in e2e])
        failures = remove(dyn, doomed)
    try:
        reach = outside.adapters(profile)
    except InputError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 2
    failures += sweep_outside(reach, profile, live, at, args.dry_run)
    for failure in failures:
        print(f"sweep: could not remove {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
