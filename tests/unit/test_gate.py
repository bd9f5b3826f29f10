"""The upgrade gate's judgement of two snapshots, its reading of the API server's metrics, and
its expected-changes file."""
from __future__ import annotations

import pytest

from conformance import InputError, gate

BEFORE = {
    "server": {"version": "v1.36.1"},
    "nodes": {"n1": {"kubelet": "v1.36.1", "runtime": "containerd://2.2.9", "kernel": "6.18", "os": "Debian", "ready": True}},
    "workloads": {"kube-system/Deployment/coredns": {"images": ["coredns:v1.14.6"], "ready_replicas": "1/1", "healthy": True},
                  "edge/Deployment/ctl": {"images": ["ctl:1"], "ready_replicas": "1/1", "healthy": True}},
    "crds": {"a.example.org": {"served": ["v1"], "storage": "v1"}},
    "certificates": {"web/site": {"ready": True, "not_after": "2027-01-01T00:00:00Z"}},
    "pools": {}, "applications": {"argocd/app": {"sync": "Synced", "health": "Healthy", "revision": "abc"}},
    "deprecated_apis": [],
}


def after(**changes):
    import copy

    doc = copy.deepcopy(BEFORE)
    for path, value in changes.items():
        section, key, field = path.split("|")
        if value is None:
            doc[section].pop(key)
        else:
            doc[section][key][field] = value
    return doc


def test_nothing_changed_is_no_difference():
    assert gate.diff(BEFORE, after()) == []


def test_an_undeclared_version_change_is_a_regression_and_a_declared_one_is_not():
    changed = after(**{"workloads|kube-system/Deployment/coredns|images": ["coredns:v1.14.7"]})
    (d,) = gate.diff(BEFORE, changed)
    assert (d.what, d.regression) == ("version change", True)
    assert 'workloads/kube-system/Deployment/coredns.images: ["coredns:v1.14.6"] -> ["coredns:v1.14.7"]' in str(d)
    (d,) = gate.diff(BEFORE, changed, ["workloads/kube-system/Deployment/*"])
    assert (d.what, d.regression) == ("expected version change", False)


def test_health_lost_and_components_gone_are_regressions_even_when_versions_may_change():
    changed = after(**{"workloads|edge/Deployment/ctl|healthy": False,
                       "applications|argocd/app|sync": "OutOfSync",
                       "certificates|web/site|not_after": "2027-03-01T00:00:00Z",
                       "crds|a.example.org|x": None})
    found = {d.key: (d.what, d.regression) for d in gate.diff(BEFORE, changed, ["*"])}
    assert found["workloads/edge/Deployment/ctl.healthy"] == ("unhealthy", True)
    assert found["applications/argocd/app.sync"] == ("unhealthy", True)
    assert found["certificates/web/site.not_after"] == ("changed", False)
    assert found["crds/a.example.org"] == ("gone", False)   # declared: "*" allows it
    assert gate.diff(BEFORE, changed)[0].regression


def test_deprecated_apis_still_requested_are_read_from_the_metrics_text():
    text = ('# HELP apiserver_requested_deprecated_apis ...\n'
            'apiserver_requested_deprecated_apis{group="",removed_release="",resource="endpoints",subresource="",version="v1"} 1\n'
            'apiserver_requested_deprecated_apis{group="flowcontrol.apiserver.k8s.io",removed_release="1.29",'
            'resource="flowschemas",subresource="",version="v1beta2"} 1\n')
    assert gate.deprecated_apis(text) == ["flowcontrol.apiserver.k8s.io/v1beta2 flowschemas (removed in 1.29)",
                                          "v1 endpoints (deprecated)"]
    newly = gate.diff(BEFORE, {**BEFORE, "deprecated_apis": ["v1 endpoints (deprecated)"]})
    assert [(d.key, d.regression) for d in newly] == [("deprecated_apis/v1 endpoints (deprecated)", False)]


def test_the_expected_changes_file_is_checked(tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text("expected_changes: [workloads/kube-system/Deployment/coredns]\n")
    assert gate._expected(str(good)) == ["workloads/kube-system/Deployment/coredns"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("expected: coredns\n")
    with pytest.raises(InputError, match="not a file of expected changes"):
        gate._expected(str(bad))


def test_bad_input_exits_2_naming_it(tmp_path, capsys):
    assert gate.main(["after", f"--dir={tmp_path}", "--profile=nonesuch"]) == 2
    assert "nonesuch" in capsys.readouterr().err
