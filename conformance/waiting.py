"""The one way to wait: a helper on tenacity, fed by one table of named timeouts.

"Timed out" is not a useful error. When a wait gives up, WaitTimeout says what was awaited, the
limit and where it came from, the last state seen and the last exception, so the failure reads
as a diagnosis. Long waits print a progress line on a terminal. Nothing else in the suite
sleeps: a probe that needs to wait for something asks this module.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import tenacity

from conformance import interrupts
from conformance.guard import WriteRefused

T = TypeVar("T")


@dataclass(frozen=True)
class Timeout:
    seconds: float
    why: str
    scaled: bool = True  # False for limits that are promises to the user, not waits on a cluster


# Every limit a wait may use, with the reason for its size. `--timeout-scale` multiplies the
# scaled ones for slow clusters; pytest-timeout is only a backstop above the largest of them.
TIMEOUTS: dict[str, Timeout] = {
    # The suite's own promise: bad input or an unreachable API server ends the run this fast.
    "api_reachable": Timeout(10, "a user waiting on a typo should not wait longer", scaled=False),
    # Objects the run creates and removes.
    "namespace_active": Timeout(30, "a new namespace is usable almost at once"),
    "namespace_deleted": Timeout(180, "finalizers of volumes and custom objects run first"),
    "object_deleted": Timeout(120, "one object's finalizers, e.g. a LoadBalancer's address release"),
    "crd_established": Timeout(60, "the API server serves a new CRD within seconds"),
    # Workloads.
    "pod_ready": Timeout(180, "image pull plus start; images are preloaded on the local cluster"),
    "deployment_available": Timeout(240, "a rollout of a few pods, one after another"),
    "endpoints_ready": Timeout(60, "EndpointSlices follow readiness within a few seconds"),
    "policy_enforced": Timeout(60, "a NetworkPolicy implementation programs a change within seconds"),
    "service_programmed": Timeout(30, "kube-proxy (or the CNI replacing it) programs a new Service "
                                      "within its sync period"),
    "container_restarted": Timeout(120, "the kubelet's crash back-off starts at 10 s and doubles"),
    "shared_workloads": Timeout(600, "another worker may be creating the shared probe workloads"),
    # Component promises: long enough that a budget miss is measured, not cut short.
    "dns_answer": Timeout(30, "CoreDNS picks up a new Service within its cache and sync period"),
    "lb_address": Timeout(180, "above every profile's lb_address_s budget"),
    "lb_refused": Timeout(30, "MetalLB's controller reports a failed allocation as it reconciles the Service"),
    "lb_released": Timeout(60, "MetalLB frees a deleted Service's address and updates the pool's status"),
    "ingress_routed": Timeout(60, "the controller takes an Ingress on and the proxy gets its routes within seconds"),
    "pvc_bound": Timeout(300, "above every profile's pvc_bound_s budget; Ceph provisions in seconds"),
    "volume_expanded": Timeout(180, "the resizer grows the volume, then the kubelet the filesystem "
                                    "on its next volume sync (about a minute)"),
    "snapshot_ready": Timeout(300, "a CSI snapshot of a small test volume is cut within seconds; "
                                   "the snapshot controller's resync adds its period"),
    "certificate_issued": Timeout(600, "ACME issuance through DNS-01 waits for propagation"),
    "certificate_served": Timeout(90, "the ingress controller picks up a new Ingress and its Secret "
                                      "within seconds; cert-manager's ingress shim orders first"),
    "secret_synced": Timeout(300, "above every profile's secret_synced_s budget"),
    "application_synced": Timeout(600, "Argo CD's default refresh is every 3 minutes"),
    "application_compared": Timeout(60, "Argo CD compares an Application within seconds of a refresh "
                                        "request or of a change to an object it manages"),
    "application_deleted": Timeout(180, "the finalizer deletes every managed object (foreground) first"),
    # The run's lease.
    "lease_released": Timeout(30, "a release is one API call"),
}

_scale = 1.0
# Called with one line while a long wait is in progress; the pytest glue points it at the
# terminal, with capture suspended. By default it writes to stderr when that is a terminal.
_progress: Callable[[str], None] | None = None
PROGRESS_AFTER_S = 10.0
PROGRESS_EVERY_S = 10.0


class WaitTimeout(AssertionError):
    """A wait that gave up; its message is the diagnosis (what, limit, last state, last error).

    An AssertionError, because a wait that gives up is the platform not keeping a promise.
    """

    def __init__(self, what: str, limit_s: float, limit_name: str, elapsed_s: float,
                 attempts: int, last_state: object, last_error: BaseException | None):
        self.what, self.limit_s, self.limit_name = what, limit_s, limit_name
        self.elapsed_s, self.attempts = elapsed_s, attempts
        self.last_state, self.last_error = last_state, last_error
        error = f"{type(last_error).__name__}: {last_error}" if last_error else "none"
        super().__init__(
            f"gave up waiting for {what} after {elapsed_s:.1f} s ({attempts} attempts; limit "
            f"{limit_s:g} s from {limit_name})\n"
            f"  last state seen: {_short(last_state)}\n"
            f"  last error: {error}")


def set_scale(factor: float) -> None:
    """The global `--timeout-scale` for slow clusters."""
    global _scale
    if factor <= 0:
        raise ValueError(f"timeout scale must be above zero, got {factor}")
    _scale = float(factor)


def set_progress(report: Callable[[str], None] | None) -> None:
    global _progress
    _progress = report


def limit(name: str) -> float:
    """The scaled limit of a named timeout, in seconds."""
    t = TIMEOUTS[name]
    return t.seconds * _scale if t.scaled else t.seconds


def largest() -> float:
    return max(limit(name) for name in TIMEOUTS)


def wait_for(what: str, probe: Callable[[], T], *, until: Callable[[T], bool] = bool,
             timeout: str | float = "pod_ready", interval: float = 1.0,
             retry_on: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """Call `probe` until `until(state)` holds; return that state.

    `timeout` is a name from TIMEOUTS (scaled) or, for a limit taken from a profile budget, a
    number of seconds (not scaled: a budget is a promise). An exception of `retry_on` counts as
    "not yet" and is kept as the last error; a WriteRefused is a bug in the test and is raised
    at once. `what` names the target: "pod dns-probe in pcf-ab12-dns to be Ready".
    """
    if isinstance(timeout, str):
        limit_s, limit_name = limit(timeout), f"timeout {timeout!r}" + (
            f" x scale {_scale:g}" if TIMEOUTS[timeout].scaled and _scale != 1 else "")
    else:
        limit_s, limit_name = float(timeout), "the caller"
    seen: dict = {"state": None, "error": None, "attempts": 0}
    started = time.monotonic()
    shown = [started]

    def attempt() -> tuple[bool, T | None]:
        interrupts.check()
        seen["attempts"] += 1
        try:
            state = probe()
        except WriteRefused:
            raise
        except retry_on as exc:
            interrupts.check()  # a library may have turned a Ctrl-C into an ordinary error
            seen["error"] = exc
            return False, None
        seen["state"] = state
        return bool(until(state)), state

    def report(_: tenacity.RetryCallState) -> None:
        now = time.monotonic()
        if now - started >= PROGRESS_AFTER_S and now - shown[0] >= PROGRESS_EVERY_S:
            shown[0] = now
            _show_progress(f"waiting for {what}: {now - started:.0f} s of {limit_s:g} s"
                           f" (last: {_short(seen['state'] if seen['error'] is None else seen['error'], 80)})")

    retrying = tenacity.Retrying(
        stop=tenacity.stop_before_delay(limit_s),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_result(lambda outcome: not outcome[0]),
        before_sleep=report,
        reraise=True,
    )
    try:
        done, state = retrying(attempt)
    except tenacity.RetryError:
        done, state = False, None
    if done:
        return state
    raise WaitTimeout(what, limit_s, limit_name, time.monotonic() - started, seen["attempts"],
                      seen["state"], seen["error"])


def _show_progress(line: str) -> None:
    if _progress is not None:
        _progress(line)
    elif sys.stderr.isatty():
        sys.stderr.write(line + "\n")


def _short(value: object, size: int = 2000) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= size else text[: size - 3] + "..."
