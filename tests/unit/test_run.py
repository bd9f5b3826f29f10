"""Run identity: labels and expiry stamping, run-scoped names, the cleanup stack, signals, and
what a Lease says about its holder."""
from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time

import pytest
from kubernetes import client as k8s
from kubernetes.stream import ws_client

from conformance import InputError, interrupts, pods, run as runs, summary
from conformance.guard import GuardedApiClient, WriteGuard, WriteRefused
from conformance.run import CleanupFailed, CleanupStack, LeaseHeld, LeaseView, RunIdentity
from conformance.waiting import wait_for

AT = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
RUN = RunIdentity("abcd1234", "full", started=AT)


def test_stamp_adds_run_labels_and_expiry_and_keeps_the_rest():
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "c", "labels": {"app": "echo"}, "annotations": {"note": "x"}}, "data": {"k": "v"}}
    stamped = RUN.stamp(obj, at=AT)
    assert stamped["metadata"]["labels"] == {
        "app": "echo", "platform-conformance.io/run": "abcd1234",
        "app.kubernetes.io/managed-by": "platform-conformance"}
    assert stamped["metadata"]["annotations"] == {"note": "x", "platform-conformance.io/expires": "2030-01-02T09:04:05Z"}
    assert stamped["data"] == {"k": "v"} and stamped["metadata"]["name"] == "c"
    assert "labels" in obj["metadata"] and "platform-conformance.io/run" not in obj["metadata"]["labels"]


def test_stamp_overrides_a_foreign_run_label_but_keeps_a_chosen_expiry():
    obj = {"metadata": {"name": "c", "labels": {"platform-conformance.io/run": "zzzz9999"},
                        "annotations": {"platform-conformance.io/expires": "2030-01-01T00:00:00Z"}}}
    stamped = RUN.stamp(obj, at=AT)
    assert stamped["metadata"]["labels"]["platform-conformance.io/run"] == "abcd1234"
    assert stamped["metadata"]["annotations"]["platform-conformance.io/expires"] == "2030-01-01T00:00:00Z"


def test_stamp_an_object_without_metadata():
    assert RUN.stamp({"kind": "X"}, at=AT)["metadata"]["labels"]["platform-conformance.io/run"] == "abcd1234"


def test_run_ids_are_dns_label_prefixes():
    ids = {runs.new_run_id() for _ in range(50)}
    assert len(ids) == 50 and all(runs.RUN_ID.match(i) for i in ids)
    assert runs.check_run_id("abcd1234") == "abcd1234"
    with pytest.raises(InputError, match="not a run id"):
        runs.check_run_id("1-bad")


def test_run_scoped_names():
    assert RUN.name("Test_Pod resolves FQDN") == "pcf-abcd1234-test-pod-resolves-fqdn"
    long = RUN.unique_name("x" * 100)
    assert len(long) <= 63 and long.startswith("pcf-abcd1234-x") and long[-5] == "-"
    assert RUN.unique_name("dns") != RUN.unique_name("dns")
    assert runs.run_of("pcf-abcd1234-bucket") == "abcd1234"
    assert runs.run_of("pcf-system") is None and runs.run_of("kube-system") is None
    assert RUN.selector == "platform-conformance.io/run=abcd1234"


def test_cleanups_run_in_reverse_order_and_all_of_them():
    done = []
    stack = CleanupStack()
    stack.push("first", lambda: done.append("first"))
    stack.push("second", lambda: (_ for _ in ()).throw(RuntimeError("stuck finalizer")))
    stack.push("third", lambda: done.append("third"))
    failures = stack.close()
    assert done == ["third", "first"]
    assert [str(f) for f in failures] == ["second: RuntimeError: stuck finalizer"]
    assert len(stack) == 0 and stack.close() == []


def test_cleanup_failure_is_raised_when_the_body_succeeded():
    with pytest.raises(CleanupFailed, match="namespace x: TimeoutError: still Terminating"):
        with CleanupStack() as stack:
            stack.push("namespace x", lambda: (_ for _ in ()).throw(TimeoutError("still Terminating")))


def test_cleanup_failure_never_masks_the_original_error():
    with pytest.raises(AssertionError) as caught:
        with CleanupStack() as stack:
            stack.push("namespace x", lambda: (_ for _ in ()).throw(TimeoutError("still Terminating")))
            raise AssertionError("dns answer was NXDOMAIN")
    assert str(caught.value) == "dns answer was NXDOMAIN"
    assert caught.value.__notes__ == ["cleanup also failed: namespace x: TimeoutError: still Terminating"]


def test_signals_during_cleanup_are_held_then_delivered():
    done = []
    stack = CleanupStack()
    stack.push("second", lambda: done.append("second"))
    stack.push("first", lambda: (os.kill(os.getpid(), signal.SIGINT), done.append("first")))
    with pytest.raises(KeyboardInterrupt, match="SIGINT during cleanup"):
        stack.close()
    assert done == ["first", "second"]  # the Ctrl-C did not cut the second cleanup


def test_a_ctrl_c_during_cleanup_carries_the_cleanups_that_failed():
    stack = CleanupStack()
    stack.push("namespace x", lambda: (_ for _ in ()).throw(TimeoutError("still Terminating")))
    stack.push("first", lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt) as caught:
        stack.close()
    assert caught.value.__notes__ == ["cleanup also failed: namespace x: TimeoutError: still Terminating"]


@pytest.fixture
def run_handlers():
    """The run's SIGINT and SIGTERM handlers, as a suite run installs them."""
    before = {s: signal.getsignal(s) for s in interrupts.STOP_SIGNALS}
    restore = interrupts.install()
    yield
    restore()
    interrupts.seen()
    assert {s: signal.getsignal(s) for s in interrupts.STOP_SIGNALS} == before


def test_a_signal_the_process_ignores_stays_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        restore = interrupts.install()
        os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN and interrupts.heard() == ()
        restore()
    finally:
        signal.signal(signal.SIGINT, before)


def let_handlers_run():
    signal.sigtimedwait([], 0)  # a pending Python-level handler runs before this returns


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signals_become_an_interrupt_and_are_noted(run_handlers, signum):
    with pytest.raises(KeyboardInterrupt, match=signal.Signals(signum).name):
        os.kill(os.getpid(), signum)
        let_handlers_run()
    assert interrupts.heard() == (signal.Signals(signum).name,) and interrupts.pending()


def swallowing_handshake(monkeypatch):
    """The Kubernetes client's own websocket call, with a Ctrl-C arriving during its handshake:
    the client turns it into ApiException(status=0)."""
    def handshake(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        let_handlers_run()

    monkeypatch.setattr(ws_client, "WSClient", handshake)
    return lambda: ws_client.websocket_call(k8s.Configuration(), "GET", "https://127.0.0.1:1/api/v1/x",
                                            _preload_content=False)


def test_the_client_swallows_a_ctrl_c_during_a_websocket_handshake(run_handlers, monkeypatch):
    """Why the run notes every stop: without a second look this interrupt is an API error."""
    with pytest.raises(k8s.ApiException) as caught:
        swallowing_handshake(monkeypatch)()
    assert caught.value.status == 0 and interrupts.pending()


def test_a_swallowed_ctrl_c_ends_a_wait_at_once(run_handlers, monkeypatch):
    call = swallowing_handshake(monkeypatch)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt, match="SIGINT .raised again"):
        wait_for("an exec to answer", call, timeout=30, retry_on=pods.TRANSIENT)
    assert time.monotonic() - t0 < 2


def test_a_swallowed_ctrl_c_ends_an_exec(run_handlers, monkeypatch):
    call = swallowing_handshake(monkeypatch)
    monkeypatch.setattr(pods, "stream", lambda *_args, **_kwargs: call())
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        pods.exec_in(k8s.ApiClient(), "ns", "pod", ["true"])


def test_a_ctrl_c_that_websocket_close_drops_ends_an_exec(run_handlers, monkeypatch):
    class Closed:
        def is_open(self):
            return False

        def read_channel(self, _channel):
            return "status: Success"

        def close(self):  # websocket-client's close: `except: pass` around its wait for the reply
            try:
                os.kill(os.getpid(), signal.SIGINT)
                let_handlers_run()
            except BaseException:  # noqa: BLE001 - the library's behaviour under test
                pass

    monkeypatch.setattr(pods, "stream", lambda *_args, **_kwargs: Closed())
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        pods.exec_in(k8s.ApiClient(), "ns", "pod", ["true"])


def test_once_the_run_has_the_interrupt_teardown_waits_run(run_handlers):
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        let_handlers_run()
    interrupts.seen()
    assert wait_for("a teardown wait", lambda: True, timeout=1)


def test_a_swallowed_interrupt_is_not_raised_inside_a_cleanup(run_handlers):
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        let_handlers_run()
    done = []
    stack = CleanupStack()
    stack.push("namespace x", lambda: done.append(wait_for("x to be gone", lambda: True, timeout=1)))
    with pytest.raises(KeyboardInterrupt, match="raised again"):
        stack.close()  # the cleanup finishes, then the interrupt goes on its way
    assert done == [True]


def test_a_deferred_signal_goes_to_the_handler_in_place_when_the_deferral_ends():
    got = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: got.append(signum))
    try:
        with interrupts.deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            let_handlers_run()
            assert got == []
        assert got == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_nested_deferrals_hold_for_the_outermost(run_handlers):
    done = []
    with pytest.raises(KeyboardInterrupt, match="SIGINT during cleanup"):
        with interrupts.deferred_signals():
            with interrupts.deferred_signals():
                os.kill(os.getpid(), signal.SIGINT)
                let_handlers_run()
            done.append("inner ended without raising")
            os.kill(os.getpid(), signal.SIGTERM)
            let_handlers_run()
            done.append("outer body went on")
    assert done == ["inner ended without raising", "outer body went on"]
    assert interrupts.heard() == ("SIGINT", "SIGTERM")


def test_a_stop_held_without_raising_is_raised_at_the_next_check(run_handlers):
    with interrupts.deferred_signals(raise_at_end=False):
        os.kill(os.getpid(), signal.SIGINT)
        let_handlers_run()
    assert interrupts.pending() and interrupts.heard() == ("SIGINT",)
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        interrupts.check()
    interrupts.seen()
    interrupts.check()


def test_the_run_can_stop_itself_from_another_thread_with_its_reason(run_handlers):
    with pytest.raises(KeyboardInterrupt, match="lost the run lease"):
        threading.Thread(target=interrupts.request_stop, args=("lost the run lease ns/l: it was deleted",)).start()
        time.sleep(5)  # interrupted by the request well before this ends
    assert interrupts.heard() == ("lost the run lease ns/l: it was deleted",)


def test_an_interrupted_verdict_exits_2():
    outcome = summary.Verdict.interrupted("interrupted by SIGINT")
    assert (outcome.exit_code, outcome.word) == (2, "interrupted")


def lease(holder="abcd1234", renewed=AT, ttl=60):
    spec = {"holderIdentity": holder, "leaseDurationSeconds": ttl, "acquireTime": "2030-01-02T02:00:00.000000Z"}
    if renewed is not None:
        spec["renewTime"] = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"metadata": {"name": "platform-conformance-full-run"}, "spec": spec}


def test_lease_is_live_within_its_ttl_and_stale_after():
    view = LeaseView.of(lease())
    assert view.live_holder(AT + dt.timedelta(seconds=59)) == "abcd1234"
    assert view.stale(AT + dt.timedelta(seconds=61))
    assert view.live_holder(AT + dt.timedelta(seconds=61)) is None


def test_lease_without_holder_or_renewal_is_stale():
    assert LeaseView.of(lease(holder=None)).stale(AT)
    assert LeaseView.of(lease(renewed=None)).stale(AT)


def test_lease_held_message_names_holder_age_and_fix():
    view = LeaseView.of(lease(holder="zzzz9999"))
    message = str(LeaseHeld(view, "pcf-system", "platform-conformance-full-run", AT + dt.timedelta(seconds=12)))
    assert "another full run (zzzz9999) holds the lease pcf-system/platform-conformance-full-run" in message
    assert "since 2030-01-02T02:00:00Z" in message and "last renewed 12 s ago" in message
    assert "--mode read-only" in message and "60 s after its last renewal" in message
    assert isinstance(LeaseHeld(view, "a", "b", AT), InputError)


def test_lease_body_is_stamped_and_renewable():
    doc = runs.RunLease(k8s.ApiClient(), RUN)._body(AT, resource_version="7")
    assert doc["spec"]["holderIdentity"] == "abcd1234" and doc["metadata"]["resourceVersion"] == "7"
    assert doc["spec"]["renewTime"] == "2030-01-02T03:04:05.000000Z"
    assert doc["metadata"]["labels"]["platform-conformance.io/run"] == "abcd1234"
    assert LeaseView.of(doc).live_holder(AT) == "abcd1234"


class FakeCoordination:
    """A Lease API whose reads follow a script: a V1Lease, or an exception to raise."""

    def __init__(self, *reads):
        self.reads, self.replaced = list(reads), 0

    def read_namespaced_lease(self, _name, _namespace):
        step = self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]
        if isinstance(step, BaseException):
            raise step
        return step

    def replace_namespaced_lease(self, *_args):
        self.replaced += 1


def held_by(holder: str) -> k8s.V1Lease:
    return k8s.V1Lease(metadata=k8s.V1ObjectMeta(name=runs.LEASE_NAME, resource_version="1"),
                       spec=k8s.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=60,
                                            acquire_time=AT, renew_time=runs.now()))


def renewing(coordination: FakeCoordination, ttl_s: float = 0.3) -> tuple[runs.RunLease, list[str]]:
    lease = runs.RunLease(k8s.ApiClient(), RUN, ttl_s=ttl_s)
    lease.coordination = coordination
    lost: list[str] = []
    lease.start_renewing(on_lost=lost.append)
    return lease, lost


def until_lost(lease: runs.RunLease) -> str:
    return wait_for("the lease to be lost", lambda: lease.lost, timeout=5, interval=0.05)


@pytest.mark.parametrize("read,why", [
    (held_by("zzzz9999"), "another full run (zzzz9999) holds it now"),
    (k8s.ApiException(status=404, reason="Not Found"), "it was deleted"),
], ids=["taken-over", "deleted"])
def test_a_lease_taken_or_deleted_is_lost_at_once(read, why):
    lease, lost = renewing(FakeCoordination(held_by(RUN.run_id), read))
    message = until_lost(lease)
    assert message == f"lost the run lease pcf-system/{runs.LEASE_NAME}: {why}"
    assert lost == [message]
    time.sleep(0.3)
    assert lost == [message], "renewal stops once the lease is lost"


def test_renewal_failures_lose_the_lease_before_it_could_go_stale():
    flaky = k8s.ApiException(status=503, reason="Service Unavailable")
    lease, lost = renewing(FakeCoordination(flaky), ttl_s=0.6)
    t0 = time.monotonic()
    message = until_lost(lease)
    assert time.monotonic() - t0 < 0.6, "lost before another run could take it over"
    assert "could not be renewed for 0 s of its 0.6 s TTL (last error: HTTP 503 Service Unavailable)" in message
    assert lost == [message]


def test_a_renewal_that_fails_once_keeps_the_lease():
    coordination = FakeCoordination(k8s.ApiException(status=503, reason="Service Unavailable"), held_by(RUN.run_id))
    lease, lost = renewing(coordination, ttl_s=0.9)
    wait_for("a renewal after the failure", lambda: coordination.replaced, timeout=5, interval=0.05)
    lease._stop.set()
    assert lease.lost is None and lost == [] and lease.renew_error is None


def test_a_halted_guard_lets_only_the_runs_deletes_through():
    guard = WriteGuard(mode="full", run_prefixes=(RUN.prefix,))
    api = GuardedApiClient(k8s.Configuration(host="https://127.0.0.1:1"), guard)
    ns = RUN.name("dns")
    api.check("POST", f"https://h/api/v1/namespaces/{ns}/configmaps", {}, {"metadata": {"name": "c"}})
    api.halt("lost the run lease pcf-system/l: it was deleted")
    with pytest.raises(WriteRefused, match="lost the run lease pcf-system/l: it was deleted; the run now only"):
        api.check("POST", f"https://h/api/v1/namespaces/{ns}/configmaps", {}, {"metadata": {"name": "c"}})
    with pytest.raises(WriteRefused, match="lost the run lease"):
        api.check("GET", f"https://h/api/v1/namespaces/{ns}/pods/p/exec?command=id", {}, None)
    api.check("GET", "https://h/api/v1/namespaces/kube-system/pods", {}, None)
    api.check("DELETE", f"https://h/api/v1/namespaces/{ns}", {}, None)
    api.check("DELETE", f"https://h/apis/coordination.k8s.io/v1/namespaces/pcf-system/leases/{runs.LEASE_NAME}",
              {}, None)
    with pytest.raises(WriteRefused, match="not the run's"):
        api.check("DELETE", "https://h/api/v1/namespaces/default/configmaps/c", {}, None)
