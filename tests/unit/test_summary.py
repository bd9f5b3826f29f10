"""The verdict, the JSON summary and the per-component table."""
from __future__ import annotations

import json

from conformance import summary
from conformance.summary import Measurement, PromiseResult


def result(promise="dns/resolve/fqdn", outcome="passed", component="dns", measurements=(), reason=None):
    return PromiseResult(f"suites/test_{component}.py::test_{promise.split('/')[-1]}", component, promise,
                         "A pod MUST resolve.", outcome, 1.25, reason, tuple(measurements))


def test_all_passed_is_exit_0():
    v = summary.verdict([result(), result("dns/a/b", "skipped")])
    assert (v.exit_code, v.word) == (0, "pass") and "1 promise check(s) passed (0 waived, 1 skipped)" in v.reason


def test_waived_failures_are_allowed():
    assert summary.verdict([result(), result("dns/a/b", "waived")]).exit_code == 0


def test_a_failure_or_error_is_exit_1_and_named():
    for bad in ("failed", "error"):
        v = summary.verdict([result(), result("dns/a/broken", bad)])
        assert (v.exit_code, v.word) == (1, "fail") and "dns/a/broken" in v.reason


def test_could_not_run_wins():
    v = summary.verdict([result("dns/a/b", "failed")], could_not_run="unreachable")
    assert (v.exit_code, v.word, v.reason) == (2, "could-not-run", "unreachable")


def test_nothing_checked_is_not_a_pass():
    v = summary.verdict([result(outcome="skipped")])
    assert v.exit_code == 2 and "cannot pass by skipping" in v.reason
    assert summary.verdict([]).exit_code == 2


def test_measurement_against_budget():
    assert Measurement("p95", 40, "ms", 50, "dns_p95_ms").within_budget is True
    assert Measurement("p95", 60, "ms", 50, "dns_p95_ms").within_budget is False
    assert Measurement("p50", 10, "ms").within_budget is None
    m = Measurement("p95", 40, "ms", 50, "dns_p95_ms")
    assert Measurement.from_dict(m.to_dict()) == m


def test_json_summary_carries_verdict_counts_and_each_promise(tmp_path):
    results = [result(measurements=[Measurement("p95", 60, "ms", 50, "dns_p95_ms")]),
               result("dns/a/b", "waived", reason="waived until 2030-01-01: ticket 7"),
               result("metallb/a/b", "skipped", component="metallb", reason="component metallb is not claimed")]
    v = summary.verdict(results)
    path = summary.write(tmp_path / "reports" / "summary.json",
                         summary.document(results, v, run_id="abcd1234", profile="local", mode="full"))
    doc = json.loads(path.read_text())
    assert doc["verdict"] == {"exit_code": 0, "word": "pass", "reason": v.reason}
    assert doc["run"] == {"run_id": "abcd1234", "profile": "local", "mode": "full"}
    assert doc["counts"] == {"passed": 1, "failed": 0, "error": 0, "waived": 1, "skipped": 1}
    first = doc["promises"][0]
    assert (first["component"], first["promise"], first["outcome"], first["duration_s"]) == (
        "dns", "dns/resolve/fqdn", "passed", 1.25)
    assert first["measurements"] == [{"name": "p95", "value": 60, "unit": "ms", "budget": 50,
                                      "budget_name": "dns_p95_ms", "within_budget": False}]
    assert doc["promises"][1]["reason"] == "waived until 2030-01-01: ticket 7"
    assert not list(tmp_path.glob("reports/*.tmp"))


def test_table_has_a_row_per_component_in_catalogue_order():
    results = [result("metallb/a/b", "failed", component="metallb", reason="no address after 60 s"),
               result(), result("dns/a/b", "waived", reason="ticket 7"),
               result("dns/c/d", measurements=[Measurement("p95", 60, "ms", 50, "dns_p95_ms")])]
    text = summary.table(results)
    lines = text.splitlines()
    assert lines[0].split() == ["component", "passed", "failed", "error", "waived", "skipped", "time"]
    assert lines[2].split() == ["dns", "2", "0", "0", "1", "0", "3.8s"]
    assert lines[3].split() == ["metallb", "0", "1", "0", "0", "0", "1.2s"]
    assert "failed:\n  metallb/a/b  suites/test_metallb.py::test_b\n      no address after 60 s" in text
    assert "waived:\n  dns/a/b" in text
    assert "dns/c/d: p95 = 60 ms (budget 50 ms from dns_p95_ms)  OVER BUDGET" in text


def statuses(*pairs):
    from conformance import claims

    return [claims.Status(claims.Claim(cid, "component", f"components.{cid}.claimed"), state, 0, 0, 0, 0, 0,
                          None if state in ("passed", "failed") else "no promise covers it")
            for cid, state in pairs]


def test_an_unchecked_claim_is_incomplete_exit_3_naming_it():
    v = summary.verdict([result()], claims=statuses(("dns", "passed"), ("metallb", "unchecked")))
    assert (v.exit_code, v.word) == (3, "incomplete") and "metallb" in v.reason and "dns" not in v.reason.split(":")[1]


def test_precedence_could_not_run_then_failure_then_nothing_checked_then_incomplete():
    unchecked = statuses(("metallb", "unchecked"))
    assert summary.verdict([result(outcome="failed")], "interrupted", unchecked).word == "could-not-run"
    v = summary.verdict([result(outcome="failed")], claims=unchecked)
    assert (v.exit_code, v.word) == (1, "fail") and "1 claim(s) unchecked: metallb" in v.reason
    v = summary.verdict([result(outcome="skipped")], claims=unchecked)
    assert v.exit_code == 2 and "cannot pass by skipping" in v.reason
    assert summary.verdict([result()], claims=unchecked).exit_code == 3
    assert summary.verdict([result()], claims=statuses(("dns", "passed"))).exit_code == 0


def test_a_narrowed_run_says_so_and_what_it_left_out():
    found = statuses(("dns", "passed"), ("metallb", "not-selected"))
    v = summary.verdict([result()], claims=found, narrowed_by=["-m 'dns'"])
    assert v.exit_code == 0 and v.reason.endswith("; narrowed by -m 'dns': not selected metallb")
    doc = summary.document([result()], v, found, ["-m 'dns'"])
    assert doc["schema"] == "platform-conformance/summary/v2"
    assert doc["narrowed"] == {"by": ["-m 'dns'"], "not_selected": ["metallb"]}
    assert doc["claims"][1] == {"id": "metallb", "kind": "component", "source": "components.metallb.claimed",
                                "state": "not-selected", "why": "no promise covers it",
                                "promises": {"ran": 0, "passed": 0, "failed": 0, "waived": 0, "skipped": 0}}
    assert summary.document([result()], summary.verdict([result()]))["narrowed"] is None


def test_narrowed_by_adds_the_mode_to_the_selection():
    mode = "read-only run (--mode=read-only selects no promise that writes)"
    skipped = PromiseResult("n", "dns", "dns/a/b", "m", "skipped", 0.0, "needs writes", narrowed=mode)
    assert summary.narrowed_by([result(), skipped, skipped], ["-k 'x'"]) == ["-k 'x'", mode]


def test_table_lists_the_claims_after_the_components():
    text = summary.table([result()], statuses(("dns", "passed"), ("metallb", "unchecked")))
    assert "\nclaims:\nclaim " in text and "metallb (components.metallb.claimed): no promise covers it" in text


def test_allure_environment_lists_the_verdict_and_every_claim(tmp_path):
    found = statuses(("dns", "passed"), ("metallb", "unchecked"))
    v = summary.verdict([result()], claims=found)
    doc = summary.document([result()], v, found, run_id="abcd1234", profile="production", mode="read-only")
    text = summary.write_allure_environment(tmp_path / "allure", doc).read_text()
    assert "verdict=incomplete (exit 3): 1 claim(s) unchecked" in text
    assert "claim\\ metallb=unchecked: 0 ran, 0 passed, 0 failed, 0 skipped; no promise covers it\n" in text
