"""Requests to stop a run (Ctrl-C, SIGTERM, or the run itself on losing its lease), heard every time.

A KeyboardInterrupt is only an exception, and libraries catch exceptions: the Kubernetes client
turns one raised during a websocket handshake into `ApiException(status=0)` (which every wait
treats as "not yet"), and websocket-client's `close()` drops whatever it catches. So the run's
handler also notes each request, and the points the run passes often (every attempt of a wait,
every exec or port-forward stream, every test) raise a request that was swallowed on its way up
again. Cleanups hold the signals (`deferred_signals`) so that a second Ctrl-C cannot cut one
short, and hand them on when they end; the end of a run holds them for good and its verdict says
what was heard.

Only the main thread receives signals; everything here that touches handlers runs there.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class _State:
    heard: list[str] = field(default_factory=list)  # every stop request, in order
    pending: bool = False  # raised as KeyboardInterrupt, not yet seen by the run's main loop
    depth: int = 0  # nesting of deferred_signals in the main thread
    held: list[tuple[int, str]] = field(default_factory=list)  # requests that arrived during a deferral
    requested: str | None = None  # the reason of a stop the run asked for itself
    installed: bool = False


_state = _State()


def heard() -> tuple[str, ...]:
    """Every stop request this process received since `install()`, in order."""
    return tuple(_state.heard)


def pending() -> bool:
    return _state.pending


def _describe(signum: int) -> str:
    """The run's own reason when it asked for the stop, else the signal's name."""
    why, _state.requested = _state.requested, None
    return why if why is not None and signum == signal.SIGINT else signal.Signals(signum).name


def _interrupt(signum: int, _frame) -> None:
    """The run's handler: note the request, then raise it where the main thread is."""
    why = _describe(signum)
    _state.heard.append(why)
    _state.pending = True
    raise KeyboardInterrupt(why)


def install() -> Callable[[], None]:
    """Make SIGINT and SIGTERM stop the run through KeyboardInterrupt (so teardown and cleanup
    run), and start noting them; returns a function that restores the previous handlers.

    A signal the process was started ignoring stays ignored, as Python leaves it: a shell
    without job control starts background commands so, to keep a terminal's Ctrl-C from them."""
    global _state
    _state = _State(installed=True)
    previous = {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS if signal.getsignal(s) != signal.SIG_IGN}

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.installed = False

    return restore


def check() -> None:
    """Raise again a stop request that was caught on its way up (outside cleanups)."""
    if _state.pending and not _state.depth:
        raise KeyboardInterrupt(f"{_state.heard[-1]} (raised again: a library had caught it)")


def seen() -> None:
    """The run's main loop has the interrupt: stop raising it again (teardown must run)."""
    _state.pending = False


@contextmanager
def surfaced() -> Iterator[None]:
    """Around a library call known to catch KeyboardInterrupt: raise it again afterwards."""
    try:
        yield
    finally:
        check()


def request_stop(reason: str) -> None:
    """Stop the run from any thread, as a Ctrl-C would, with `reason` as what was heard.

    A real SIGINT to the main thread also wakes a blocking system call there."""
    _state.requested = reason
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


@contextmanager
def deferred_signals(raise_at_end: bool = True) -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the body runs (a cleanup), then hand them on.

    A second Ctrl-C must not cut a cleanup short and leave half the objects behind. When the
    outermost deferral ends, the first request held goes to the handler that was in place (the
    run's own raises KeyboardInterrupt); with `raise_at_end=False` it is left pending instead,
    for the next `check()` to raise, because raising there would skip what must still happen
    (the start of the session, whose end would then never run, or the end of the run itself,
    whose verdict reports it). Nested deferrals hold for the outermost one. Outside the main
    thread this does nothing: signals never arrive there.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _state.depth:
        _state.depth += 1
        try:
            yield
        finally:
            _state.depth -= 1
        return
    state = _state

    def hold(signum: int, _frame) -> None:
        why = _describe(signum)
        state.held.append((signum, why))
        if state.installed:
            state.heard.append(why)
            os.write(2, f"\nplatform-conformance: {why} received; the run stops once its cleanup is done\n".encode())

    state.depth = 1
    previous = {s: signal.signal(s, hold) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        state.depth = 0
        held, state.held = state.held, []
        if held:
            _hand_on(*held[0], previous[held[0][0]], raise_at_end)
        elif raise_at_end:
            check()  # one a library caught before the cleanup began


def _hand_on(signum: int, why: str, handler, raise_at_end: bool) -> None:
    """Deliver a held request to the handler that was in place when the deferral began."""
    if handler is _interrupt:
        _state.pending = True
        if raise_at_end:
            raise KeyboardInterrupt(f"{why} during cleanup")
    elif handler is signal.default_int_handler:
        raise KeyboardInterrupt(f"{why} during cleanup")
    elif callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)
    # SIG_IGN: the process ignores it, as it would have without the deferral.
