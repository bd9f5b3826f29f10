"""A real cold Go build reports its progress: the project's own resolver program, compiled with an
empty build cache (about a minute on two cores); needs Go, not the cluster."""
from __future__ import annotations

import os
import shutil
import threading

import pytest

from conformance.cluster import build, paths
from conformance.cluster.progress import BuildProgress


@pytest.mark.skipif(shutil.which("go") is None, reason="go is not installed")
def test_a_cold_build_shows_packages_compiled_of_the_total_as_it_goes(tmp_path):
    lines: list[str] = []
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            lines.append(line)
        print(line, flush=True)

    env = dict(os.environ, GOCACHE=str(tmp_path / "gocache"), GOTOOLCHAIN="local", GOWORK="off", GOFLAGS="",
               CGO_ENABLED="0")
    progress = BuildProgress("resolve-go", "local", log)
    out = tmp_path / "resolve-go"
    with progress.ticking(every_s=0.5):   # short: a cold build of the stdlib took 9 s here
        build.compile_with_progress(progress, paths.REPO / "images" / "resolve-go", env, ["-trimpath"],
                                    {out: "."})
    record = progress.finish()
    assert out.is_file()
    assert record.cold and record.total > 50 and record.compiled == record.total
    during = [line for line in lines if "building resolve-go (1 of 1)" in line]
    # The first line is said when the build starts; the ticker adds one every 0.5 s with the count.
    assert during[0].startswith(f"resolve-go local: building resolve-go (1 of 1), 0/{record.total} packages")
    counts = [int(line.split(", ")[1].split("/")[0]) for line in during]
    assert len(counts) >= 3 and counts == sorted(counts) and 0 < counts[-1] <= record.total, during
    assert lines[-1].startswith("resolve-go local: cold build done in")
