"""Keep the cluster's host processes running, the way a local-up script would, but restartable.

Started detached by `up`; it starts each component in order, restarts one that exits (with a
growing delay), leaves alone a component that has a hold file (so a test can stop the runtime
on purpose), and on SIGTERM stops everything in reverse order. Children die with it.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from conformance.cluster.host import parents

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOP_GRACE_S = 15
POLL_S = 0.5
MAX_BACKOFF_S = 10


def _prctl(option: int, value: int) -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value)


def _die_with_parent() -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _adopted(own: set[int]) -> list[int]:
    """Orphans re-parented to us (runtime shims, pod processes): not started by us directly."""
    me = os.getpid()
    return [pid for pid, parent in parents().items() if parent == me and pid not in own]


def _reap(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: str
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    held: bool = False
    started_at: float = field(default=0.0)

    def start(self) -> None:
        out = open(self.log, "ab", buffering=0)
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env}, preexec_fn=_die_with_parent,
        )
        out.close()
        self.started_at = time.time()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_GRACE_S)


def run(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    hold_dir = Path(spec["hold_dir"])
    status_path = Path(spec["status"])
    children = [Child(c["name"], c["argv"], c.get("env", {}), c["log"]) for c in spec["components"]]
    # Shims outlive the runtime that started them; as their subreaper we reap them and can
    # stop them on the way out, so nothing of the cluster survives it.
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    while not stopping.is_set():
        now = time.time()
        for child in children:
            child.held = (hold_dir / child.name).exists()
            if child.held:
                child.stop()
                continue
            if child.alive():
                if now - child.started_at > 60:
                    child.backoff = 1.0
                continue
            if child.proc is not None and child.next_start == 0.0:
                # It exited: wait a growing delay before the restart.
                child.restarts += 1
                child.next_start = now + child.backoff
                child.backoff = min(child.backoff * 2, MAX_BACKOFF_S)
            if now >= child.next_start:
                child.next_start = 0.0
                child.start()
        status = {
            c.name: {"pid": c.proc.pid if c.alive() else None, "restarts": c.restarts, "held": c.held}
            for c in children
        }
        tmp = status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(status_path)
        _reap(_adopted({c.proc.pid for c in children if c.proc}))
        stopping.wait(POLL_S)

    for child in reversed(children):
        child.stop()
    for _ in range(3):
        orphans = _adopted(set())
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        _reap(orphans)
    status_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
