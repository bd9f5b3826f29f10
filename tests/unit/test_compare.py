"""The upgrade gate compares two runs' summaries: regressions and lost coverage fail it."""
from __future__ import annotations

import json

import pytest

from conformance import compare
from conformance.summary import SCHEMA


def summary(*promises: tuple[str, str], measured: dict | None = None) -> dict:
    return {"schema": SCHEMA, "promises": [
        {"nodeid": f"suites/test_x.py::{pid.replace('/', '_')}", "promise": pid, "outcome": outcome,
         "reason": f"why {outcome}", "measurements": [
             {"name": n, "value": v, "budget": 50.0} for n, v in (measured or {}).get(pid, {}).items()]}
        for pid, outcome in promises]}


def test_unchanged_runs_have_no_regression():
    doc = summary(("dns/a", "passed"), ("dns/b", "skipped"))
    result = compare.compare(doc, doc)
    assert result.changes == () and result.regressions == ()


@pytest.mark.parametrize("after", ["failed", "error", "skipped", "absent"])
def test_a_promise_that_held_and_no_longer_does_is_a_regression(after):
    before = summary(("dns/a", "passed"))
    now = summary() if after == "absent" else summary(("dns/a", after))
    [change] = compare.compare(before, now).regressions
    assert (change.promise, change.before, change.after) == ("dns/a", "passed", after)


def test_a_failure_that_stays_failed_or_starts_passing_is_not_a_regression():
    before = summary(("dns/a", "failed"), ("dns/b", "failed"))
    after = summary(("dns/a", "failed"), ("dns/b", "passed"))
    result = compare.compare(before, after)
    assert [c.promise for c in result.changes] == ["dns/b"] and result.regressions == ()


def test_a_failing_check_that_is_no_longer_checked_is_lost_coverage():
    result = compare.compare(summary(("dns/a", "failed")), summary(("dns/a", "skipped")))
    assert [c.promise for c in result.regressions] == ["dns/a"]


def test_measurements_are_set_side_by_side_with_their_budget():
    before = summary(("dns/p95", "passed"), measured={"dns/p95": {"p95": 0.5}})
    after = summary(("dns/p95", "passed"), measured={"dns/p95": {"p95": 0.9}})
    result = compare.compare(before, after)
    assert result.measurements == (("dns/p95", "p95", 0.5, 0.9, 50.0),)
    assert "dns/p95: p95: 0.5 -> 0.9 (budget 50)" in compare.render(result)


def test_exit_codes(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(summary(("dns/a", "passed"))))
    bad.write_text(json.dumps(summary(("dns/a", "failed"))))
    assert compare.main([str(good), str(good)]) == 0
    assert compare.main([str(good), str(bad)]) == 1
    assert "REGRESSED  dns/a  passed -> failed" in capsys.readouterr().out
    assert compare.main([str(good), str(tmp_path / "missing.json")]) == 2
    assert "cannot read summary" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something/else", "promises": []}))
    assert compare.main([str(good), str(tmp_path / "other.json")]) == 2


def with_claims(doc: dict, **states: str) -> dict:
    return {**doc, "claims": [{"id": cid.replace("__", "/"), "state": state, "why": f"why {state}"}
                              for cid, state in states.items()]}


@pytest.mark.parametrize("after", ["unchecked", "not-selected", "absent"])
def test_a_claim_checked_before_and_not_after_is_lost_coverage(after):
    doc = summary(("dns/a", "passed"))
    before = with_claims(doc, dns="passed", metallb="failed")
    now = with_claims(doc, dns="passed") if after == "absent" else with_claims(doc, dns="passed", metallb=after)
    [change] = compare.compare(before, now).regressions
    assert (change.nodeid, change.before, change.after) == ("claim metallb", "failed", after)
    assert "REGRESSED  metallb  failed -> " + after in compare.render(compare.compare(before, now))


def test_a_claim_that_becomes_checked_or_stays_unchecked_is_no_regression():
    doc = summary(("dns/a", "passed"))
    before = with_claims(doc, metallb="unchecked", cluster__dual_stack="unchecked")
    after = with_claims(doc, metallb="passed", cluster__dual_stack="unchecked")
    result = compare.compare(before, after)
    assert [c.promise for c in result.changes] == ["metallb"] and result.regressions == ()


def test_a_v1_summary_before_is_still_read(tmp_path):
    old = {**summary(("dns/a", "passed")), "schema": "platform-conformance/summary/v1"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(with_claims(summary(("dns/a", "passed")), dns="passed")))
    assert compare.main([str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0
