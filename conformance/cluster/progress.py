"""How far a Go build is, so a slow build can be told from a hung one.

A cold build of Kubernetes takes many minutes and `go build` says nothing meanwhile. Its `-v`
flag prints each package as its compilation starts, and `go list -deps` says beforehand which
packages are not in the build cache yet; this module counts one against the other, with the
modules downloaded, the time taken and the last package started (a package that started long
ago and is still the last one is a slow compile or a hang), and compares with the last cold build of
the same program, recorded in the cache beside its binaries. Lines are whole lines (no carriage
returns), so the same output reads on a terminal and in a CI log.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

EVERY_S = 15.0
# A build that compiled at least this share of its packages started from a cold cache.
COLD_SHARE = 0.8
IMPORT_PATH = re.compile(r"^[A-Za-z0-9_.~+-]+(/[A-Za-z0-9_.~+-]+)*$")
DOWNLOADING = re.compile(r"^go: downloading (\S+) (\S+)$")


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass(frozen=True)
class Record:
    """One finished build of a program, as kept in the cache."""

    version: str
    seconds: float
    compiled: int
    total: int
    finished: str

    @property
    def cold(self) -> bool:
        return self.total > 0 and self.compiled >= COLD_SHARE * self.total


def read_last_cold(path: Path) -> Record | None:
    """The last cold build recorded at `path`; an unreadable record counts as none."""
    try:
        return Record(**json.loads(path.read_text())["last_cold"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(path: Path, record: Record) -> None:
    """Keep `record` as the last build, and as the last cold build when it was one."""
    last_cold = record if record.cold else read_last_cold(path)
    doc = {"last": asdict(record), "last_cold": asdict(last_cold) if last_cold else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


class BuildProgress:
    """The accounting of one program's build, fed line by line from go's stderr."""

    def __init__(self, name: str, version: str, log: Callable[[str], None], last_cold: Record | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.name, self.version, self.log, self.last_cold, self.clock = name, version, log, last_cold, clock
        self.started = clock()
        self.expected: frozenset[str] | None = None
        self.compiled: set[str] = set()
        self.downloads = 0
        self.stage = "starting"
        self.last_package: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def expect(self, packages: Iterable[str]) -> None:
        """The packages the build will compile (not in the build cache yet)."""
        with self._lock:
            self.expected = frozenset(packages)

    def step(self, stage: str) -> None:
        """A new stage (listing, one binary after another); said at once."""
        with self._lock:
            self.stage = stage
        self.report()

    def feed(self, line: str) -> None:
        """One line of `go list` or `go build -v` output on stderr."""
        line = line.strip()
        with self._lock:
            if DOWNLOADING.match(line):
                self.downloads += 1
            elif IMPORT_PATH.match(line) and (self.expected is None or line in self.expected):
                self.compiled.add(line)
                self.last_package = (line, self.clock())

    def line(self) -> str:
        with self._lock:
            now = self.clock()
            parts = [f"{self.name} {self.version}: {self.stage}"]
            if self.expected:
                share = len(self.compiled) / len(self.expected)
                parts.append(f"{len(self.compiled)}/{len(self.expected)} packages compiled or compiling "
                             f"({share:.0%})")
            elif self.expected is not None:
                parts.append("every package is in the build cache")
            elif self.compiled:
                parts.append(f"{len(self.compiled)} packages compiled or compiling")
            if self.downloads:
                parts.append(f"{self.downloads} modules downloaded")
            parts.append(f"{duration(now - self.started)} elapsed")
            if self.last_package:
                package, at = self.last_package
                parts.append(f"last package started {package} {duration(now - at)} ago")
        return ", ".join(parts) + "; " + self.previous()

    def previous(self) -> str:
        if self.last_cold is None:
            return "no earlier cold build recorded"
        return (f"last cold build took {duration(self.last_cold.seconds)} ({self.last_cold.version}, "
                f"{self.last_cold.compiled} packages)")

    def report(self) -> None:
        self.log(self.line())

    @contextmanager
    def ticking(self, every_s: float = EVERY_S) -> Iterator[BuildProgress]:
        """Report every `every_s` seconds while the body runs, output or not: a build that
        stops printing is exactly the case a person needs to see."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(every_s):
                self.report()

        thread = threading.Thread(target=tick, name=f"build-progress-{self.name}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=5)

    def finish(self) -> Record:
        """The record of this build, said in one line."""
        with self._lock:
            record = Record(self.version, round(self.clock() - self.started, 1), len(self.compiled),
                            len(self.expected) if self.expected is not None else len(self.compiled),
                            dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        kind = "cold " if record.cold else ""
        self.log(f"{self.name} {self.version}: {kind}build done in {duration(record.seconds)}, "
                 f"{record.compiled} packages compiled; {self.previous()}")
        return record
