"""The judge of the breakage tests: a broken component's promise fails by its own check.

A promise that errored in setup (a fixture gave up) never ran its check, so it proves nothing
about the broken component; nor does a test that crashed on something other than its assertion
or its wait.
"""
from __future__ import annotations

from tests.integration.core_runs import SuiteRun

CAUSE = "Deployment kube-system/coredns has 0 of 0 replicas ready"


def _run(*results: tuple[str, str, str]) -> SuiteRun:
    return SuiteRun(1, 1.0, {"dns/resolve/service-fqdn": [
        {"nodeid": f"suites/test_dns.py::t[{i}]", "outcome": outcome, "reason": reason, "diagnosis": diagnosis}
        for i, (outcome, reason, diagnosis) in enumerate(results)]}, "")


def test_failures_by_the_promises_own_check_naming_the_cause_pass():
    run = _run(("failed", "AssertionError: {'pod': ()} != {'pod': ('10.96.0.5',)}", f"likely causes:\n  - {CAUSE}"),
               ("failed", "assert {'pod': ()} == {'pod': ('10.96.0.5',)}", CAUSE),
               ("failed", "conformance.waiting.WaitTimeout: gave up waiting for pod x to be Ready", CAUSE))
    assert run.failed_by_its_check("dns/resolve/service-fqdn", CAUSE) == {}
    assert len(run.failures("dns/resolve/service-fqdn")) == 3


def test_an_error_in_setup_is_not_the_promise_failing():
    run = _run(("failed", "AssertionError: no answer", CAUSE),
               ("error", "conformance.waiting.WaitTimeout: gave up waiting for a ready probe pod", CAUSE))
    wrong = run.failed_by_its_check("dns/resolve/service-fqdn", CAUSE)
    assert list(wrong) == ["suites/test_dns.py::t[1]"] and wrong["suites/test_dns.py::t[1]"].startswith("outcome error")
    assert [f["nodeid"] for f in run.failures("dns/resolve/service-fqdn")] == ["suites/test_dns.py::t[0]"]


def test_a_crash_or_a_diagnosis_without_the_cause_is_named():
    run = _run(("failed", "KeyError: 'addresses'", CAUSE), ("failed", "AssertionError: no answer", "no known cause found"),
               ("passed", None, None))
    wrong = run.failed_by_its_check("dns/resolve/service-fqdn", CAUSE)
    assert sorted(wrong) == [f"suites/test_dns.py::t[{i}]" for i in range(3)]
    assert "failed on KeyError" in wrong["suites/test_dns.py::t[0]"]
    assert "diagnosis does not name" in wrong["suites/test_dns.py::t[1]"]


def test_a_promise_that_did_not_run_is_named():
    assert _run().failed_by_its_check("dns/resolve/nxdomain", CAUSE) == {"dns/resolve/nxdomain": "did not run"}
