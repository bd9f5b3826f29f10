"""Upstream's e2e as a referee: which specs stand for a claim, and how its JUnit report becomes promises."""
from __future__ import annotations

import json

import pytest

from conformance import InputError, profile as profiles, referee
from conformance.profile import PROMISE_ID, Images

JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="7586" failures="1">
  <testsuite name="Kubernetes e2e suite" tests="7586" failures="1">
    <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="0.4"></testcase>
    <testcase name="[It] [sig-network] DNS should provide DNS for the cluster  [Conformance]" classname="Kubernetes e2e suite" status="passed" time="12.5"></testcase>
    <testcase name="[It] [sig-network] DNS should provide DNS for services  [Conformance]" classname="Kubernetes e2e suite" status="failed" time="610">
      <failure message="[FAILED] DNS probe pods never answered: dig timed out" type="failed">long trace</failure>
    </testcase>
    <testcase name="[It] [sig-network] DNS should provide DNS for the cluster [Provider:GCE]" classname="Kubernetes e2e suite" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
    <testcase name="[It] [sig-apps] Deployment should run [Conformance]" classname="Kubernetes e2e suite" status="skipped" time="0"></testcase>
  </testsuite>
</testsuites>
"""


def test_the_claimed_core_components_choose_the_specs():
    local = profiles.load("local", [])
    assert referee.focus_for(local) == [f for c in ("dns", "networking", "runtime") for f in referee.FOCUS[c]]
    none = profiles.load("local", ["components.dns.claimed=false", "components.networking.claimed=false",
                                   "components.runtime.claimed=false"])
    assert referee.focus_for(none) == []


def test_each_spec_is_a_promise_of_its_own_with_its_text_as_the_must_sentence(tmp_path):
    (tmp_path / "junit_01.xml").write_text(JUNIT)
    specs, broken = referee.parse_junit(tmp_path / "junit_01.xml", list(referee.FOCUS["dns"]))
    assert broken is None
    assert [s.text for s in specs] == ["[sig-network] DNS should provide DNS for the cluster  [Conformance]",
                                       "[sig-network] DNS should provide DNS for services  [Conformance]"]
    passed, failed = (s.promise() for s in specs)
    assert passed.component == "kubernetes-e2e" and passed.outcome == "passed" and passed.must == specs[0].text
    assert passed.promise == "kubernetes-e2e/sig-network/dns-should-provide-dns-for-the-cluster"
    assert PROMISE_ID.match(passed.promise) and PROMISE_ID.match(failed.promise)
    assert failed.outcome == "failed" and failed.reason == "[FAILED] DNS probe pods never answered: dig timed out"
    assert failed.diagnosis == "long trace" and failed.duration_s == 610


def test_a_failed_setup_means_the_referee_could_not_run(tmp_path):
    (tmp_path / "junit_01.xml").write_text(JUNIT.replace(
        '"[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="0.4">',
        '"[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="failed" time="0.4">'
        '<failure message="Unexpected error: no nodes are ready">x</failure>'))
    _, broken = referee.parse_junit(tmp_path / "junit_01.xml", list(referee.FOCUS["dns"]))
    assert broken and "no nodes are ready" in broken


def test_a_missing_report_names_its_path(tmp_path):
    with pytest.raises(InputError, match="junit_01.xml"):
        referee.parse_junit(tmp_path / "junit_01.xml", [".*"])


def test_a_profile_that_does_not_allow_it_stops_with_exit_2_and_one_line(capsys):
    assert referee.main(["--profile=production"]) == 2
    err = capsys.readouterr().err
    assert "policy.allow_upstream_e2e is false" in err and "Traceback" not in err and err.count("\n") == 1


def test_behind_a_mirror_e2e_reads_its_registries_from_a_repo_list(tmp_path):
    assert referee.repo_list(Images(), tmp_path) == {}
    env = referee.repo_list(Images(registry_prefix="reg.example:5000/m"), tmp_path)
    doc = json.loads((tmp_path / "repo-list.yaml").read_text())
    assert env == {"KUBE_TEST_REPO_LIST": str((tmp_path / "repo-list.yaml").resolve())}
    assert doc == {"promoterE2eRegistry": "reg.example:5000/m/registry.k8s.io/e2e-test-images",
                   "gcRegistry": "reg.example:5000/m/registry.k8s.io"}


def test_allure_results_carry_the_component_and_promise_labels(tmp_path):
    spec = referee.SpecResult("[sig-network] DNS should provide DNS for the cluster [Conformance]", "passed", 2.0)
    referee.allure_results([spec], tmp_path, 1000)
    (result,) = [json.loads(p.read_text()) for p in tmp_path.glob("*-result.json")]
    labels = {label["name"]: label["value"] for label in result["labels"]}
    assert result["status"] == "passed" and result["start"] == 1000 and result["stop"] == 3000
    assert labels["component"] == "kubernetes-e2e" and labels["promise"] == spec.promise().promise


def test_the_referee_images_carry_the_tags_the_pinned_manifest_go_names():
    """Each upstream test image the stack builds has the registry, name and tag that the pinned
    k8s.io/kubernetes test/utils/image/manifest.go gives it (so e2e.test finds it preloaded)."""
    import re as regex

    from conformance import mirror
    from conformance.cluster import build

    source = build.programs()["kubernetes"].source_dir() / "test/utils/image/manifest.go"
    if not source.exists():
        pytest.skip(f"{source} is not in the Go module cache (a cluster build downloads it)")
    registries = {"PromoterE2eRegistry": "registry.k8s.io/e2e-test-images", "GcRegistry": "registry.k8s.io"}
    upstream = {f"{registries[r]}/{name}:{tag}" for r, name, tag in regex.findall(
        r'Config\{list\.(\w+), "([^"]+)", "([^"]+)"\}', source.read_text()) if r in registries}
    assert set(mirror.referee_images()) <= upstream, set(mirror.referee_images()) - upstream


def test_building_the_referee_images_installs_mmdebstrap_and_a_static_busybox():
    from conformance.cluster import stack_images

    wanted = stack_images.packages(("core", referee.TIER))
    assert wanted["mmdebstrap"] == "mmdebstrap" and wanted["busybox"] == "busybox-static"
