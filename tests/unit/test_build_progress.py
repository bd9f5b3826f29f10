"""A cold build shows how far it is: packages compiled of those the cache lacks, downloads, time,
and the last cold build's time; counted on real `go list` and `go build -v` output.

The captured files under tests/data/go-build come from building a small program that requires
golang.org/x/text with an empty module cache and an empty build cache.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest

from conformance.cluster import build
from conformance.cluster.errors import HarnessError
from conformance.cluster.progress import BuildProgress, Record, duration, read_last_cold, write_record

DATA = Path(__file__).parents[1] / "data" / "go-build"
LISTED = (DATA / "greet-list.stdout").read_text().splitlines()
STALE = [p for p in LISTED if p]
COMPILED = (DATA / "greet-build-v.stderr").read_text().splitlines()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def progress(lines: list[str], last_cold: Record | None = None) -> tuple[BuildProgress, Clock]:
    clock = Clock()
    return BuildProgress("greet", "v1.0.0", lines.append, last_cold, clock), clock


def test_packages_are_counted_against_what_the_cache_lacks():
    lines: list[str] = []
    p, clock = progress(lines)
    for line in (DATA / "greet-list.stderr").read_text().splitlines():
        p.feed(line)
    p.expect(STALE)
    p.step("building greet (1 of 1)")
    for line in COMPILED[:30]:
        clock.t += 1
        p.feed(line)
    clock.t += 12
    assert len(STALE) == 73 and len(COMPILED) == 73
    assert p.line() == ("greet v1.0.0: building greet (1 of 1), 30/73 packages compiled or compiling (41%), "
                        f"1 modules downloaded, 42s elapsed, last package started {COMPILED[29]} 12s ago; "
                        "no earlier cold build recorded")
    for line in COMPILED[30:]:
        p.feed(line)
    assert "73/73 packages compiled or compiling (100%)" in p.line()
    assert lines == ["greet v1.0.0: building greet (1 of 1), 0/73 packages compiled or compiling (0%), "
                     "1 modules downloaded, 0s elapsed; no earlier cold build recorded"]


def test_error_output_is_not_counted_as_packages():
    p, _ = progress([])
    p.expect(["example.local/greet/broken", "example.local/greet/cmd/broke"])
    for line in (DATA / "broken-build-v.stderr").read_text().splitlines():
        p.feed(line)
    assert p.compiled == {"example.local/greet/broken"}


def test_without_a_listing_packages_are_counted_without_a_total():
    p, _ = progress([])
    for line in COMPILED[:5]:
        p.feed(line)
    assert p.line().startswith("greet v1.0.0: starting, 5 packages compiled or compiling, 0s elapsed")


def test_a_fully_cached_build_says_so():
    p, _ = progress([])
    p.expect([])
    assert "every package is in the build cache" in p.line()


def test_progress_lines_are_whole_lines_for_terminals_and_ci_logs():
    p, _ = progress([])
    p.expect(STALE)
    assert "\r" not in p.line() and "\n" not in p.line()


def test_the_last_cold_build_is_named_and_only_a_cold_build_replaces_it(tmp_path):
    record = tmp_path / "greet.build.json"
    write_record(record, Record("v1.0.0", 725.0, 70, 73, "2030-01-02T12:00:00Z"))
    write_record(record, Record("v1.0.1", 8.0, 3, 73, "2030-01-03T12:00:00Z"))
    doc = json.loads(record.read_text())
    assert doc["last"]["version"] == "v1.0.1" and doc["last_cold"]["version"] == "v1.0.0"
    lines: list[str] = []
    p, _ = progress(lines, read_last_cold(record))
    assert p.line().endswith("; last cold build took 12m05s (v1.0.0, 70 packages)")


def test_an_unreadable_record_counts_as_none(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "old.json").write_text(json.dumps({"last_cold": {"seconds": 3}}))
    assert read_last_cold(tmp_path / "bad.json") is None and read_last_cold(tmp_path / "old.json") is None
    assert read_last_cold(tmp_path / "missing.json") is None


def test_finish_records_a_cold_build_and_says_how_long_it_took():
    lines: list[str] = []
    p, clock = progress(lines, Record("v0.9.0", 600.0, 73, 73, "x"))
    p.expect(STALE)
    for line in COMPILED:
        p.feed(line)
    clock.t += 61
    record = p.finish()
    assert record.cold and (record.compiled, record.total, record.seconds) == (73, 73, 61.0)
    assert lines[-1] == ("greet v1.0.0: cold build done in 1m01s, 73 packages compiled; "
                         "last cold build took 10m00s (v0.9.0, 73 packages)")


def test_a_silent_build_still_reports():
    """A hung build prints nothing; the ticker reports anyway, so the person sees time pass."""
    seen = threading.Event()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if len(lines) >= 2:
            seen.set()

    p = BuildProgress("greet", "v1.0.0", log)
    with p.ticking(every_s=0.01):
        assert seen.wait(5)
    assert all(line.startswith("greet v1.0.0: starting") for line in lines)


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0s"), (59.6, "1m00s"), (725, "12m05s")])
def test_durations_read_as_minutes_and_seconds(seconds, text):
    assert duration(seconds) == text


# --- the wiring, with a stand-in `go` that replays the captured output -------------------------

FAKE_GO = f"""#!{sys.executable}
import sys, pathlib
data = pathlib.Path({str(DATA)!r})
args = sys.argv[1:]
if args[0] == "list":
    sys.stderr.write((data / "greet-list.stderr").read_text())
    sys.stdout.write((data / "greet-list.stdout").read_text())
elif args[0] == "build":
    assert "-v" in args, args
    sys.stderr.write((data / "greet-build-v.stderr").read_text())
    pathlib.Path(args[args.index("-o") + 1]).write_text("binary")
"""


def test_compile_lists_then_builds_each_output_feeding_the_progress(tmp_path):
    (tmp_path / "go").write_text(FAKE_GO)
    (tmp_path / "go").chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    lines: list[str] = []
    p = BuildProgress("greet", "v1.0.0", lines.append)
    outputs = {tmp_path / "out" / "greet": "example.local/greet", tmp_path / "out" / "again": "example.local/greet"}
    (tmp_path / "out").mkdir()
    build.compile_with_progress(p, tmp_path, env, ["-trimpath"], outputs)
    assert [line.split(",")[0] for line in lines] == [
        "greet v1.0.0: listing packages (and downloading modules the first time)",
        "greet v1.0.0: building greet (1 of 2)", "greet v1.0.0: building again (2 of 2)"]
    assert "73/73 packages compiled" in p.line() and "1 modules downloaded" in p.line()
    assert all(out.read_text() == "binary" for out in outputs)


def test_a_failing_command_names_itself_with_the_tail_of_its_output(tmp_path):
    script = "import sys; print('pkg/a', file=sys.stderr); print('x.go:1: boom', file=sys.stderr); sys.exit(3)"
    fed: list[str] = []
    with pytest.raises(HarnessError, match=r"failed \(exit 3\)[\s\S]*x.go:1: boom"):
        build._stream([sys.executable, "-c", script], tmp_path, dict(os.environ), 30, fed.append)
    assert fed == ["pkg/a\n", "x.go:1: boom\n"]


def test_a_command_past_its_limit_is_stopped_and_named(tmp_path):
    with pytest.raises(HarnessError, match="did not finish within 1 s"):
        build._stream([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, dict(os.environ), 1,
                      lambda _: None)
