"""The one wait helper: what it returns, what it retries, and what its give-up message says."""
from __future__ import annotations

import pytest

from conformance import waiting
from conformance.guard import Request, WriteRefused
from conformance.waiting import WaitTimeout, wait_for


@pytest.fixture(autouse=True)
def unit_scale():
    yield
    waiting.set_scale(1.0)
    waiting.set_progress(None)


def sequence(*steps):
    """A probe that plays `steps` in order (exceptions are raised) and repeats the last."""
    played = list(steps)

    def probe():
        step = played.pop(0) if len(played) > 1 else played[0]
        if isinstance(step, BaseException):
            raise step
        return step

    return probe


def test_returns_the_state_that_satisfied_the_condition():
    probe = sequence({"phase": "Pending"}, ConnectionError("reset"), {"phase": "Running"})
    state = wait_for("pod p to run", probe, until=lambda s: s["phase"] == "Running", timeout=5, interval=0.01)
    assert state == {"phase": "Running"}


def test_give_up_message_states_target_limit_last_state_and_last_error():
    probe = sequence(ConnectionError("connection refused"), {"phase": "Pending", "reason": "ImagePullBackOff"})
    with pytest.raises(WaitTimeout) as caught:
        wait_for("pod dns-probe in pcf-x to be Ready", probe, until=lambda s: s["phase"] == "Running",
                 timeout=0.3, interval=0.05)
    e = caught.value
    message = str(e)
    assert message.startswith("gave up waiting for pod dns-probe in pcf-x to be Ready after ")
    assert "limit 0.3 s from the caller" in message
    assert "last state seen: {'phase': 'Pending', 'reason': 'ImagePullBackOff'}" in message
    assert "last error: ConnectionError: connection refused" in message
    assert e.attempts >= 2 and e.last_state["reason"] == "ImagePullBackOff"


def test_message_names_the_timeout_and_the_scale(monkeypatch):
    monkeypatch.setitem(waiting.TIMEOUTS, "tiny", waiting.Timeout(0.1, "for this test"))
    waiting.set_scale(2)
    assert waiting.limit("tiny") == pytest.approx(0.2)
    with pytest.raises(WaitTimeout, match=r"limit 0.2 s from timeout 'tiny' x scale 2"):
        wait_for("nothing", lambda: None, timeout="tiny", interval=0.05)


def test_unscaled_timeouts_ignore_the_scale():
    waiting.set_scale(5)
    assert waiting.limit("api_reachable") == 10
    assert waiting.limit("pod_ready") == 5 * waiting.TIMEOUTS["pod_ready"].seconds


def test_scale_must_be_positive():
    with pytest.raises(ValueError):
        waiting.set_scale(0)


def test_a_write_refused_is_a_bug_not_a_retry():
    calls = []

    def probe():
        calls.append(1)
        raise WriteRefused(Request(verb="create", path="/api/v1/nodes"), "not allowed")

    with pytest.raises(WriteRefused):
        wait_for("x", probe, timeout=5, interval=0.01)
    assert len(calls) == 1


def test_exceptions_outside_retry_on_propagate_at_once():
    with pytest.raises(KeyError):
        wait_for("x", sequence(KeyError("k")), timeout=5, interval=0.01, retry_on=(ConnectionError,))


def test_progress_lines_name_target_elapsed_and_limit(monkeypatch):
    lines = []
    waiting.set_progress(lines.append)
    monkeypatch.setattr(waiting, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(waiting, "PROGRESS_EVERY_S", 0.0)
    with pytest.raises(WaitTimeout):
        wait_for("lb address of svc/echo", lambda: {"ingress": []}, until=lambda s: s["ingress"],
                 timeout=0.2, interval=0.05)
    assert lines and lines[0].startswith("waiting for lb address of svc/echo: ")
    assert "of 0.2 s" in lines[0] and "{'ingress': []}" in lines[0]


def test_every_named_timeout_says_why():
    assert all(t.why and t.seconds > 0 for t in waiting.TIMEOUTS.values())
    assert waiting.largest() == max(t.seconds for t in waiting.TIMEOUTS.values())
