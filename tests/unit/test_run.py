"""Run identity: labels and expiry stamping, run-scoped names, the cleanup stack, signals, and
what a Lease says about its holder."""
from __future__ import annotations

import datetime as dt
import os
import signal

import pytest
from kubernetes import client as k8s

from conformance import InputError, run as runs
from conformance.run import CleanupFailed, CleanupStack, LeaseHeld, LeaseView, RunIdentity

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


def test_sigterm_becomes_an_interrupt():
    before = signal.getsignal(signal.SIGTERM)
    restore = runs.terminate_as_interrupt()
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)  # give the handler its turn
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) == before


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
