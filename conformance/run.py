"""A run's identity, the labels it stamps, the cleanups it owes, and the lease a full run holds.

Everything a run creates carries its run label and an expiry, so that what a killed run left can
be found and removed by the sweeper. Cleanups are registered right after each create, run in
reverse order, each waits until its object is gone, and none hides the failure that came first.
A full run holds a Lease in the control namespace, renewed while it lives, so that two full runs
never share a cluster; a lease not renewed within its TTL is stale and may be taken over.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from conformance import InputError
from conformance.guard import CONTROL_NAMESPACE
from conformance.interrupts import deferred_signals
from conformance.waiting import wait_for

RUN_LABEL = "platform-conformance.io/run"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "platform-conformance"
EXPIRES_ANNOTATION = "platform-conformance.io/expires"
TEST_ANNOTATION = "platform-conformance.io/test"
# Objects outlive a run only by accident; after this long the sweeper may take them even if
# their run still looks alive.
MAX_AGE = dt.timedelta(hours=6)
LEASE_NAME = "platform-conformance-full-run"
LEASE_TTL_S = 60
# The full identity (manifests/rbac/20-runner.yaml) gets its write rights inside a run
# namespace from a RoleBinding the run creates there, to this ClusterRole.
RUNNER_SUBJECTS = ({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "platform-conformance:runner"},
                   {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "platform-conformance:runners"})
RUN_NAMESPACE_ROLE = "platform-conformance-run-namespace"
RUN_ID = re.compile(r"^[a-z][a-z0-9]{7}$")
DNS_LABEL_MAX = 63


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


GATE_ID_PREFIX = "gate"  # ids of upgrade-gate sentinels; never a run's


def new_run_id() -> str:
    """Eight characters, a letter first, so `pcf-<id>-...` is a valid DNS label prefix."""
    alphabet = string.ascii_lowercase + string.digits
    while True:
        run_id = secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(alphabet) for _ in range(7))
        if not is_gate(run_id) and not run_id.startswith(REFEREE_ID_PREFIX):
            return run_id


def new_gate_id() -> str:
    """A run id for an upgrade gate's sentinels: `gate` and four more characters. Whatever carries
    it outlives runs (the sweeper takes it only past its own, longer expiry)."""
    alphabet = string.ascii_lowercase + string.digits
    return GATE_ID_PREFIX + "".join(secrets.choice(alphabet) for _ in range(8 - len(GATE_ID_PREFIX)))


def is_gate(run_id: str) -> bool:
    return run_id.startswith(GATE_ID_PREFIX)


REFEREE_ID_PREFIX = "e2e"  # ids of upstream e2e referee runs (conformance.referee)


def new_referee_id() -> str:
    """A run id for upstream's e2e run as a referee: `e2e` and five more characters. Its lease
    is the full run's; the sweeper keeps upstream's namespaces while such a run holds it."""
    alphabet = string.ascii_lowercase + string.digits
    return REFEREE_ID_PREFIX + "".join(secrets.choice(alphabet) for _ in range(8 - len(REFEREE_ID_PREFIX)))


def is_referee(run_id: str | None) -> bool:
    return bool(run_id and run_id.startswith(REFEREE_ID_PREFIX))


def check_run_id(run_id: str) -> str:
    if not RUN_ID.match(run_id):
        raise InputError(f"--run-id {run_id!r} is not a run id. Fix: use eight lowercase letters or "
                         "digits starting with a letter, or leave it out to get a new one")
    return run_id


def prefix(run_id: str) -> str:
    """Every namespace and external name of the run starts with this."""
    return f"pcf-{run_id}-"


def run_of(name: str) -> str | None:
    """The run id inside a run-scoped name (`pcf-<id>-...`), or None."""
    m = re.match(r"^pcf-([a-z][a-z0-9]{7})-", name)
    return m.group(1) if m else None


def slug(purpose: str) -> str:
    """A purpose as the last words of a name: lowercase letters and digits joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", purpose.lower()).strip("-") or "x"


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class RunIdentity:
    """Who a run is; it labels every object and names every external side effect."""

    run_id: str
    mode: str
    started: dt.datetime = field(default_factory=now)
    max_age: dt.timedelta = MAX_AGE

    @property
    def labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id, MANAGED_BY_LABEL: MANAGED_BY}

    @property
    def selector(self) -> str:
        return f"{RUN_LABEL}={self.run_id}"

    @property
    def prefix(self) -> str:
        return prefix(self.run_id)

    def annotations(self, at: dt.datetime | None = None) -> dict[str, str]:
        return {EXPIRES_ANNOTATION: format_time((at or now()) + self.max_age)}

    def stamp(self, obj: dict, at: dt.datetime | None = None) -> dict:
        """A copy of `obj` carrying the run labels and an expiry. The run's labels always win;
        an expiry the object already carries is kept (a test may want an earlier one)."""
        meta = dict(obj.get("metadata") or {})
        meta["labels"] = {**(meta.get("labels") or {}), **self.labels}
        meta["annotations"] = {**self.annotations(at), **(meta.get("annotations") or {})}
        return {**obj, "metadata": meta}

    def name(self, purpose: str) -> str:
        """A run-scoped DNS label: namespaces, and external side effects (Vault paths, S3 buckets
        and users, DNS records), so the sweeper can tell whose they are from the name alone."""
        return (self.prefix + slug(purpose))[:DNS_LABEL_MAX].rstrip("-")

    def unique_name(self, purpose: str) -> str:
        """Like `name`, with a random tail, for one object per test (parametrised or repeated)."""
        tail = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4))
        return self.name(purpose)[: DNS_LABEL_MAX - 5].rstrip("-") + "-" + tail


# --- cleanup ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CleanupFailure:
    what: str
    error: BaseException

    def __str__(self) -> str:
        return f"{self.what}: {type(self.error).__name__}: {self.error}"


class CleanupFailed(AssertionError):
    """Cleanups that did not finish; raised only when nothing failed before them."""

    def __init__(self, failures: list[CleanupFailure]):
        self.failures = failures
        super().__init__("cleanup left objects behind:\n" + "\n".join(f"  {f}" for f in failures))


class CleanupStack:
    """Undo actions, registered right after each create and run last-in first-out.

    `close()` runs every one even when some fail, returns the failures and never raises. Used
    as a context manager, it raises CleanupFailed only when the body itself succeeded; when the
    body failed, its exception propagates with the cleanup failures added as notes, so the
    original failure is never masked.
    """

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._lock = threading.Lock()

    def push(self, what: str, undo: Callable[[], None]) -> None:
        with self._lock:
            self._undo.append((what, undo))

    def __len__(self) -> int:
        return len(self._undo)

    def close(self) -> list[CleanupFailure]:
        failures = []
        try:
            with deferred_signals():
                while True:
                    with self._lock:
                        if not self._undo:
                            break
                        what, undo = self._undo.pop()
                    try:
                        undo()
                    except Exception as exc:  # noqa: BLE001 - every cleanup gets its turn
                        failures.append(CleanupFailure(what, exc))
        except KeyboardInterrupt as stop:  # held until now; what did not go away is said with it
            for f in failures:
                stop.add_note(f"cleanup also failed: {f}")
            raise
        return failures

    def __enter__(self) -> CleanupStack:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        failures = self.close()
        if failures and exc is not None:
            for f in failures:
                exc.add_note(f"cleanup also failed: {f}")
        elif failures:
            raise CleanupFailed(failures)
        return False


def delete_and_wait(dyn: DynamicClient, api_version: str, kind: str, name: str,
                    namespace: str | None = None, timeout: str = "object_deleted") -> None:
    """Delete one object (already gone is fine) and wait until the API server no longer has it."""
    resource = dyn.resources.get(api_version=api_version, kind=kind)
    try:
        resource.delete(name=name, namespace=namespace, body={"propagationPolicy": "Foreground"}
                        if kind != "Namespace" else None)
    except NotFoundError:
        return
    where = f" in {namespace}" if namespace else ""

    def still_there() -> dict | None:
        try:
            obj = resource.get(name=name, namespace=namespace)
        except NotFoundError:
            return None
        status = obj.to_dict().get("status") or {}
        return {"phase": status.get("phase"), "deletionTimestamp": obj.metadata.deletionTimestamp,
                "finalizers": obj.metadata.finalizers, "conditions": status.get("conditions")}

    wait_for(f"{kind} {name}{where} to be gone", still_there, until=lambda s: s is None, timeout=timeout)


# --- the full run's lease --------------------------------------------------------------------

@dataclass(frozen=True)
class LeaseView:
    """What a Lease says about its holder, read from its dict form."""

    holder: str | None
    acquired: dt.datetime | None
    renewed: dt.datetime | None
    ttl_s: int

    @classmethod
    def of(cls, lease: dict) -> LeaseView:
        spec = lease.get("spec") or {}
        return cls(holder=spec.get("holderIdentity"), acquired=_time(spec.get("acquireTime")),
                   renewed=_time(spec.get("renewTime")),
                   ttl_s=int(spec.get("leaseDurationSeconds") or LEASE_TTL_S))

    def stale(self, at: dt.datetime) -> bool:
        """Not renewed within its TTL: its holder is dead (or was never there)."""
        return self.holder is None or self.renewed is None or at > self.renewed + dt.timedelta(
            seconds=self.ttl_s)

    def live_holder(self, at: dt.datetime) -> str | None:
        return None if self.stale(at) else self.holder


def _time(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return parse_time(str(value))


class LeaseHeld(InputError):
    """Another full run holds the lease."""

    def __init__(self, view: LeaseView, namespace: str, name: str, at: dt.datetime):
        self.view = view
        ago = f"{(at - view.renewed).total_seconds():.0f} s ago" if view.renewed else "never"
        since = format_time(view.acquired) if view.acquired else "an unknown time"
        super().__init__(
            f"another full run ({view.holder}) holds the lease {namespace}/{name} since {since}, "
            f"last renewed {ago}. Fix: wait for it to finish, or run with --mode read-only; if that "
            f"run died, its lease is taken over {view.ttl_s} s after its last renewal, and "
            "`nox -s sweep` removes what it left")


class RunLease:
    """The Lease a full run holds in the control namespace while it lives."""

    def __init__(self, api: k8s.ApiClient, run: RunIdentity, namespace: str = CONTROL_NAMESPACE,
                 name: str = LEASE_NAME, ttl_s: int = LEASE_TTL_S):
        self.api, self.run, self.namespace, self.name, self.ttl_s = api, run, namespace, name, ttl_s
        self.coordination = k8s.CoordinationV1Api(api)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renew_error: BaseException | None = None
        self.lost: str | None = None  # why the lease was lost while the run lived

    def _body(self, at: dt.datetime, resource_version: str | None = None, acquired=None) -> dict:
        meta = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            meta["resourceVersion"] = resource_version
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.run.run_id, "leaseDurationSeconds": self.ttl_s,
                         "acquireTime": _micro(acquired or at), "renewTime": _micro(at)}}
        return self.run.stamp(body, at)

    def acquire(self) -> None:
        """Take the lease, or take over a stale one; raise LeaseHeld when another run lives."""
        at = now()
        try:
            current = self.coordination.read_namespaced_lease(self.name, self.namespace)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            self._write(lambda: self.coordination.create_namespaced_lease(self.namespace, self._body(at)))
            return
        view = LeaseView.of(self.api.sanitize_for_serialization(current))
        if view.holder != self.run.run_id and not view.stale(at):
            raise LeaseHeld(view, self.namespace, self.name, at)
        body = self._body(at, current.metadata.resource_version)
        self._write(lambda: self.coordination.replace_namespaced_lease(self.name, self.namespace, body))

    def _write(self, call: Callable[[], object]) -> None:
        try:
            call()
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
            # Someone else created or took the lease between our read and our write.
            current = self.coordination.read_namespaced_lease(self.name, self.namespace)
            raise LeaseHeld(LeaseView.of(self.api.sanitize_for_serialization(current)),
                            self.namespace, self.name, now()) from None

    def renew(self) -> None:
        """Push renewTime forward, unless the lease has gone to someone else."""
        current = self.coordination.read_namespaced_lease(self.name, self.namespace)
        view = LeaseView.of(self.api.sanitize_for_serialization(current))
        if view.holder != self.run.run_id:
            raise LeaseHeld(view, self.namespace, self.name, now())
        body = self._body(now(), current.metadata.resource_version, acquired=view.acquired)
        self.coordination.replace_namespaced_lease(self.name, self.namespace, body)

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def start_renewing(self, on_lost: Callable[[str], None] | None = None) -> None:
        """Renew every third of the TTL on a daemon thread until release().

        The lease is lost when another run holds it, when it was deleted (another run may
        take it at once), or when it went unrenewed so long that it would be stale before the
        next attempt. Then renewal stops, `lost` says why, and `on_lost(lost)` is called (from
        this thread), so that the run stops writing and ends.
        """
        interval = self.ttl_s / 3

        def loop() -> None:
            renewed = time.monotonic()
            while not self._stop.wait(interval):
                try:
                    self.renew()
                    self.renew_error, renewed = None, time.monotonic()
                    continue
                except Exception as exc:  # noqa: BLE001 - judged below; renewal retries while it can
                    self.renew_error = exc
                why = self._loss(self.renew_error, time.monotonic() - renewed, interval)
                if why is not None and not self._stop.is_set():
                    self.lost = f"lost the run lease {self.where}: {why}"
                    if on_lost is not None:
                        on_lost(self.lost)
                    return

        self._thread = threading.Thread(target=loop, name="pcf-lease", daemon=True)
        self._thread.start()

    def _loss(self, error: BaseException, unrenewed_s: float, interval_s: float) -> str | None:
        """Why a failed renewal means the lease is lost; None while a retry may still keep it."""
        if isinstance(error, LeaseHeld):
            holder = error.view.holder
            return f"another full run ({holder}) holds it now" if holder else "it names no holder any more"
        if isinstance(error, k8s.ApiException) and error.status == 404:
            return "it was deleted"
        if unrenewed_s + interval_s >= self.ttl_s:
            return (f"it could not be renewed for {unrenewed_s:.0f} s of its {self.ttl_s:g} s TTL "
                    f"(last error: {_error(error)})")
        return None

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        try:
            current = self.coordination.read_namespaced_lease(self.name, self.namespace)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return
            raise
        if LeaseView.of(self.api.sanitize_for_serialization(current)).holder == self.run.run_id:
            self.coordination.delete_namespaced_lease(
                self.name, self.namespace,
                body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(
                    resource_version=current.metadata.resource_version)))


def _error(exc: BaseException) -> str:
    """An API error by its status (its text is the whole response), anything else by its text."""
    if isinstance(exc, k8s.ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _micro(at: dt.datetime) -> str:
    """Lease times are MicroTime: RFC 3339 with microseconds."""
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
