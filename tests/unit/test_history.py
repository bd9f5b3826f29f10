"""The nightly history: summaries kept per run, series per measurement, regressions flagged."""
from __future__ import annotations

import json

import pytest

from conformance import history


def summary(started: str, run_id: str, values: dict[str, float], budget: float | None = 50.0,
            word: str = "pass") -> dict:
    return {"run": {"run_id": run_id, "started": started}, "verdict": {"word": word},
            "promises": [{"promise": promise, "outcome": "passed", "measurements": [
                {"name": "p95", "value": v, "unit": "ms", "budget": budget}]} for promise, v in values.items()]}


def write(folder, docs):
    folder.mkdir(parents=True, exist_ok=True)
    for i, doc in enumerate(docs):
        (folder / f"{i:02d}.json").write_text(json.dumps(doc))
    return folder


def test_a_value_past_its_budget_is_flagged_even_in_the_first_run():
    points = history.series([summary("2026-11-01T00:00:00+00:00", "r1", {"dns/p95": 60})])["dns/p95 · p95"]
    (flag,) = history.flags(points)
    assert "past its budget of 50 ms" in flag.why


def test_a_value_worse_than_one_and_a_half_times_the_median_of_the_previous_seven_is_flagged():
    values = [10, 11, 10, 12, 10, 11, 10, 16, 14]   # 16 > 1.5 * median(10..12)=15; 14 is not
    docs = [summary(f"2026-11-{d + 1:02d}T00:00:00+00:00", f"r{d}", {"dns/p95": v}, budget=None)
            for d, v in enumerate(values)]
    points = history.series(docs)["dns/p95 · p95"]
    flagged = [(f.point.run_id, f.why) for f in history.flags(points)]
    assert [run for run, _ in flagged] == ["r7"]
    assert "worse than 1.5 times the median (10 ms) of the 7 runs before it" in flagged[0][1]


def test_too_few_earlier_runs_flag_nothing_but_the_budget():
    docs = [summary(f"2026-11-0{d + 1}T00:00:00+00:00", f"r{d}", {"x": v}, budget=None) for d, v in enumerate([1, 9])]
    assert history.flags(history.series(docs)["x · p95"]) == []


def test_runs_are_ordered_by_start_and_kept_under_sortable_names(tmp_path):
    src = tmp_path / "summary.json"
    src.write_text(json.dumps(summary("2026-11-02T03:04:05+00:00", "abc", {"x": 1})))
    kept = history.keep(src, tmp_path / "hist")
    assert kept.name == "2026-11-02T030405Z_abc.json"
    write(tmp_path / "hist2", [summary("2026-11-03T00:00:00+00:00", "late", {"x": 1}),
                               summary("2026-11-01T00:00:00+00:00", "early", {"x": 1})])
    assert [d["run"]["run_id"] for d in history.load(tmp_path / "hist2")] == ["early", "late"]


def test_a_file_that_is_not_a_summary_is_named(tmp_path):
    folder = write(tmp_path / "h", [{"not": "a summary"}])
    with pytest.raises(ValueError, match="00.json is not a run summary"):
        history.load(folder)
    assert history.main([str(tmp_path / "missing")]) == 2
