"""Exit codes and the JSON verdict of whole runs of tiny generated suites."""
from __future__ import annotations

import json
import textwrap
import time

import pytest
import yaml

from tinysuite import ALL_PLUGINS, DNS_ONLY, derived_profile, project, run as run_pytest


def run(root, *args, **kw):
    """A whole run of a tiny suite, on the local profile narrowed to what the tiny suites
    cover (cluster DNS), so that no other claim is left unchecked; a later --profile wins."""
    profile = derived_profile(root / "dns-only.yaml", **DNS_ONLY)
    return run_pytest(root, f"--profile={profile}", *args, **kw)

DNS = '''
import pytest

pytestmark = pytest.mark.dns


@pytest.mark.promise("dns/resolve/service-fqdn")
def test_pod_resolves_service_fqdn(record_measurement):
    """A pod MUST resolve a Service's fully qualified name."""
    m = record_measurement("lookup p95", 12.0, "ms", budget="dns_p95_ms")
    assert m.value <= m.budget


@pytest.mark.promise("dns/resolve/nxdomain")
def test_missing_name_is_nxdomain():
    """A lookup of a missing name MUST answer NXDOMAIN."""
    assert {FAILS} is False, "answer was NOERROR"


@pytest.mark.writes
@pytest.mark.promise("dns/records/headless")
def test_headless_service_has_pod_records():
    """A headless Service MUST have a record per ready pod."""
'''
METALLB = '''
import pytest


@pytest.mark.metallb
@pytest.mark.promise("metallb/address/assigned")
def test_lb_service_gets_address():
    """A LoadBalancer Service MUST get an address from a pool."""
'''


def suite(tmp_path, fails: bool, **extra):
    return project(tmp_path, {"suites/test_dns.py": DNS.replace("{FAILS}", repr(fails)),
                              "suites/test_metallb.py": METALLB, **extra})


def verdict(root):
    return json.loads((root / "reports" / "summary.json").read_text())


def outcomes(root):
    return {p["promise"]: p["outcome"] for p in verdict(root)["promises"]}


def test_all_claimed_promises_pass_exit_0(tmp_path):
    root = suite(tmp_path, fails=False)
    proc = run(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = verdict(root)
    assert doc["verdict"]["exit_code"] == 0 and doc["verdict"]["word"] == "pass"
    assert outcomes(root) == {"dns/resolve/service-fqdn": "passed", "dns/resolve/nxdomain": "passed",
                              "dns/records/headless": "passed", "metallb/address/assigned": "skipped"}
    measured = doc["promises"][0]["measurements"][0]
    assert (measured["value"], measured["budget"], measured["budget_name"]) == (12.0, 50.0, "dns_p95_ms")
    assert "component  passed  failed" in proc.stdout and "verdict: pass (exit 0)" in proc.stdout


def test_a_failed_promise_exit_1(tmp_path):
    root = suite(tmp_path, fails=True)
    proc = run(root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = verdict(root)
    assert doc["verdict"]["exit_code"] == 1 and "dns/resolve/nxdomain" in doc["verdict"]["reason"]
    failed = next(p for p in doc["promises"] if p["outcome"] == "failed")
    assert failed["reason"] == "AssertionError: answer was NOERROR"
    assert failed["must"] == "A lookup of a missing name MUST answer NXDOMAIN."


def test_a_waived_failure_exit_0_and_an_expired_waiver_does_not_count(tmp_path):
    root = suite(tmp_path, fails=True)
    waiver = "waivers=[{promise: dns/resolve/nxdomain, reason: ticket 7, expires: %s}]"
    proc = run(root, "--set", waiver % "2999-01-01")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    waived = next(p for p in verdict(root)["promises"] if p["promise"] == "dns/resolve/nxdomain")
    assert (waived["outcome"], waived["reason"]) == ("waived", "waived until 2999-01-01: ticket 7")
    proc = run(root, "--set", waiver % "2000-01-01")
    assert proc.returncode == 1 and outcomes(root)["dns/resolve/nxdomain"] == "failed"


def test_unclaimed_and_read_only_skips_carry_their_reasons(tmp_path):
    root = suite(tmp_path, fails=False)
    assert run(root, "--mode", "read-only").returncode == 0
    reasons = {p["promise"]: p["reason"] for p in verdict(root)["promises"]}
    assert reasons["dns/records/headless"] == "read-only run: this promise needs writes (run with --mode full)"
    assert reasons["metallb/address/assigned"].startswith("component metallb is not claimed by profile local-derived")


def test_nothing_checked_exit_2(tmp_path):
    root = suite(tmp_path, fails=False)
    proc = run(root, "-m", "metallb")  # selects only an unclaimed component
    assert proc.returncode == 2, proc.stdout
    assert "cannot pass by skipping" in verdict(root)["verdict"]["reason"]


def with_metallb(root):
    """The tiny suites' profile, claiming MetalLB too."""
    metallb = {"claimed": True, "namespace": "metallb", "pools": ["pool-1"]}
    return derived_profile(root / "metallb.yaml", cluster=DNS_ONLY["cluster"],
                           components={**DNS_ONLY["components"], "metallb": metallb})


def test_a_claim_no_promise_covers_is_incomplete_exit_3_and_failures_still_win(tmp_path):
    root = project(tmp_path, {"suites/test_dns.py": DNS.replace("{FAILS}", "False")})
    proc = run(root, f"--profile={with_metallb(root)}")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    doc = verdict(root)
    assert (doc["verdict"]["exit_code"], doc["verdict"]["word"]) == (3, "incomplete")
    assert "2 claim(s) unchecked, no promise of theirs ran: metallb, metallb/pool:pool-1" in doc["verdict"]["reason"]
    claims = {c["id"]: c for c in doc["claims"]}
    assert claims["dns"]["state"] == "passed" and claims["dns"]["promises"]["ran"] == 3
    assert claims["metallb"] == {"id": "metallb", "kind": "component", "source": "components.metallb.claimed",
                                 "state": "unchecked", "why": "no promise covers it: no suite checks it yet",
                                 "promises": {"ran": 0, "passed": 0, "failed": 0, "waived": 0, "skipped": 0}}
    assert "verdict: incomplete (exit 3)" in proc.stdout and "metallb (components.metallb.claimed)" in proc.stdout
    (root / "suites" / "test_dns.py").write_text(textwrap.dedent(DNS.replace("{FAILS}", "True")))
    proc = run(root, f"--profile={with_metallb(root)}")
    assert proc.returncode == 1 and "2 claim(s) unchecked: metallb" in verdict(root)["verdict"]["reason"]


def test_a_capability_whose_promises_all_skip_is_unchecked(tmp_path):
    covering = '''
        import pytest

        @pytest.mark.dns
        @pytest.mark.covers("cluster/dual-stack")
        @pytest.mark.promise("dns/resolve/aaaa")
        def test_aaaa():
            """A Service MUST have an AAAA record."""
            pytest.skip("the probe pod has no IPv6 address")

        @pytest.mark.dns
        @pytest.mark.promise("dns/resolve/a")
        def test_a():
            """A Service MUST have an A record."""
        '''
    root = project(tmp_path, {"suites/test_dns.py": covering})
    dual = derived_profile(root / "dual.yaml", **{**DNS_ONLY, "cluster": {"dual_stack": True}})
    proc = run(root, f"--profile={dual}")
    assert proc.returncode == 3, proc.stdout
    [claim] = [c for c in verdict(root)["claims"] if c["id"] == "cluster/dual-stack"]
    assert claim["state"] == "unchecked" and claim["source"] == "cluster.dual_stack"
    assert claim["why"] == "none of its 1 promise check(s) ran: the probe pod has no IPv6 address"
    assert next(p for p in verdict(root)["promises"] if p["promise"] == "dns/resolve/aaaa")["covers"] == [
        "cluster/dual-stack"]
    assert run(root, f"--profile={dual}", "-m", "dns").returncode == 3  # what was selected must run
    (root / "suites" / "test_dns.py").write_text(textwrap.dedent(covering).replace("pytest.skip(", "print("))
    assert run(root, f"--profile={dual}").returncode == 0


@pytest.mark.parametrize(("args", "by"), [
    (["-m", "dns"], "-m 'dns'"),
    (["-k", "not lb_service"], "-k 'not lb_service'"),
    (["--deselect", "suites/test_metallb.py::test_lb_service_gets_address"],
     "--deselect suites/test_metallb.py::test_lb_service_gets_address"),
    (["suites/test_dns.py"], "the paths suites/test_dns.py"),
    (["-n", "2", "-m", "dns"], "-m 'dns'"),  # decided by the xdist controller, which collects nothing
])
def test_a_selection_narrows_the_verdict_and_says_so(tmp_path, args, by):
    root = suite(tmp_path, fails=False)
    proc = run(root, f"--profile={with_metallb(root)}", *args)
    assert proc.returncode == 0, proc.stdout
    doc = verdict(root)
    assert doc["narrowed"] == {"by": [by], "not_selected": ["metallb", "metallb/pool:pool-1"]}
    assert doc["verdict"]["reason"].endswith(f"; narrowed by {by}: not selected metallb, metallb/pool:pool-1")
    assert f"narrowed by {by}" in proc.stdout
    assert "metallb (components.metallb.claimed): no selected promise covers it" in proc.stdout


def test_a_read_only_run_is_narrowed_not_incomplete(tmp_path):
    root = suite(tmp_path, fails=False)
    proc = run(root, "--mode", "read-only")
    assert proc.returncode == 0, proc.stdout
    mode = "read-only run (--mode=read-only selects no promise that writes)"
    assert verdict(root)["narrowed"] == {"by": [mode], "not_selected": []}
    assert f"narrowed by {mode}" in verdict(root)["verdict"]["reason"]


def test_xdist_workers_share_one_run_and_report_to_the_controller(tmp_path):
    root = project(tmp_path, {"suites/test_ids.py": '''
        import pytest

        @pytest.mark.dns
        @pytest.mark.promise("dns/run/shared-id")
        @pytest.mark.parametrize("n", range(4))
        def test_run_id(n, pytestconfig, tmp_path_factory):
            """Every worker MUST see the controller's run id."""
            from fixtures.options import settings
            (tmp_path_factory.getbasetemp().parent / f"id-{n}").write_text(settings(pytestconfig).run.run_id)
        '''})
    proc = run(root, "-n", "2", "--run-id", "abcd1234", f"--basetemp={tmp_path / 'bt'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = {p.name: p.read_text() for p in (tmp_path / "bt").glob("id-*")}
    assert written == {f"id-{n}": "abcd1234" for n in range(4)}
    assert len(verdict(root)["promises"]) == 4 and verdict(root)["run"]["run_id"] == "abcd1234"


def test_bad_profile_exit_2_one_message_no_traceback(tmp_path):
    root = suite(tmp_path, fails=False)
    proc = run(root, "--set", "budgets.dns_p95_ms=fast")
    assert proc.returncode == 2
    assert "budgets.dns_p95_ms: expected a number" in proc.stderr and "Fix:" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert verdict(root)["verdict"]["word"] == "could-not-run"


def kubeconfig(tmp_path, server="https://127.0.0.1:1"):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


@pytest.mark.parametrize("mode", ["full", "read-only"])
def test_unreachable_cluster_exit_2_within_10_s_naming_the_server(tmp_path, mode):
    root = project(tmp_path / "p", {"suites/test_dns.py": DNS.replace("{FAILS}", "False")}, plugins=ALL_PLUGINS)
    started = time.monotonic()
    proc = run(root, f"--kubeconfig={kubeconfig(tmp_path)}", "--mode", mode)
    assert time.monotonic() - started < 10
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "cannot reach the API server https://127.0.0.1:1" in out and "Fix:" in out
    assert "Traceback" not in out
    assert "passed" not in proc.stdout  # nothing ran


def test_missing_kubeconfig_exit_2(tmp_path):
    root = project(tmp_path / "p", {"suites/test_dns.py": DNS.replace("{FAILS}", "False")}, plugins=ALL_PLUGINS)
    proc = run(root, f"--kubeconfig={tmp_path / 'absent'}")
    assert proc.returncode == 2 and "absent does not exist" in proc.stderr
    assert "could-not-run" == verdict(root)["verdict"]["word"]


def test_option_value_outside_the_project_is_caught(tmp_path):
    root = project(tmp_path / "p", {"suites/test_dns.py": DNS.replace("{FAILS}", "False")}, plugins=ALL_PLUGINS)
    proc = run(root, "--kubeconfig", str(kubeconfig(tmp_path)))
    assert proc.returncode == 2
    assert "join such options to their value with '='" in proc.stderr


def test_plan_needs_no_cluster_and_changes_nothing(tmp_path):
    root = project(tmp_path, {"suites/test_dns.py": DNS.replace("{FAILS}", "True"),
                              "suites/test_metallb.py": METALLB}, plugins=ALL_PLUGINS)
    proc = run(root, "--plan", "--profile", "production", f"--kubeconfig={tmp_path / 'absent'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "plan for profile production" in out and "mode read-only" in out
    assert "will run (3):" in out and "will skip (1):" in out
    assert "read-only run: this promise needs writes" in out
    assert "nothing: this is a read-only run" in out
    assert "FAILED" not in out and not (root / "reports" / "summary.json").exists()
    assert "no promise will check (" in out and "control_plane, runtime, networking, cilium, ingress, cert_manager" in out
    assert "the run would end incomplete (exit 3)" in out
    narrowed = run(root, "--plan", "--profile", "production", "-m", "dns").stdout
    assert "will run (2):" in narrowed and "will skip (1):" in narrowed
    assert "the run is narrowed by -m 'dns'" in narrowed and "no selected promise covers it" in narrowed
    full = run(root, "--plan", "--profile", "production", "--mode", "full").stdout
    assert "clusterissuers.cert-manager.io (write_allowlist.cluster_scoped)" in full


def test_plan_under_xdist_is_printed_once(tmp_path):
    root = suite(tmp_path, fails=False)
    proc = run(root, "--plan", "-n", "2")
    assert proc.returncode == 0 and proc.stdout.count("plan for profile local") == 1


def test_project_tests_outside_suites_need_no_cluster(tmp_path):
    root = project(tmp_path, {"tests/test_own.py": "def test_library():\n    assert True\n"}, plugins=ALL_PLUGINS)
    proc = run(root, "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (root / "reports").exists()


def test_report_metadata_is_derived_from_markers_and_docstrings(tmp_path):
    root = suite(tmp_path, fails=True)
    proc = run(root, f"--alluredir={tmp_path / 'allure'}", f"--junitxml={tmp_path / 'junit.xml'}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    results = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
    failed = next(r for r in results if r["status"] == "failed")
    labels = {(label["name"], label["value"]) for label in failed["labels"]}
    assert failed["name"] == "A lookup of a missing name MUST answer NXDOMAIN."
    assert {("feature", "dns"), ("story", "dns/resolve/nxdomain"), ("component", "dns"),
            ("promise", "dns/resolve/nxdomain")} <= labels
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="pcf.promise" value="dns/resolve/nxdomain"' in junit
    environment = (tmp_path / "allure" / "environment.properties").read_text()
    assert "verdict=fail (exit 1): 1 promise check(s) failed: dns/resolve/nxdomain" in environment
    assert "claim\\ dns=failed: 3 ran, 2 passed, 1 failed, 0 skipped\n" in environment
