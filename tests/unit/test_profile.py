"""The profile loader: shipped profiles load, and each kind of bad input gets one clear error."""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import yaml

from conformance import profile as profiles
from conformance.components import COMPONENTS
from conformance.profile import ProfileError

LOCAL = yaml.safe_load(profiles.resolve("local").read_text())


def write(tmp_path: Path, doc: dict | str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def local_with(**changes) -> dict:
    """The local profile's YAML with top-level sections replaced or removed (None)."""
    doc = dict(LOCAL)
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


def error_of(tmp_path: Path, doc, overrides=()) -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        profiles.load(write(tmp_path, doc), overrides)
    return caught.value


@pytest.mark.parametrize("name", ["local", "kind", "production"])
def test_shipped_profiles_load(name):
    p = profiles.load(name)
    assert p.name == name
    assert p.source.endswith(f"{name}.yaml")
    assert p.claims("dns") and p.claims("control_plane")


def test_local_profile_states_the_local_cluster_facts():
    p = profiles.load("local")
    assert p.cluster.api_endpoint == "https://192.168.77.2:6443"
    assert p.cluster.nodes == ("pcf-node",)
    assert (p.components.dns.service, p.components.dns.ip, p.components.dns.replicas) == ("kube-dns", "10.96.0.10", 1)
    assert p.claimed == ("control_plane", "runtime", "networking", "dns", "ingress", "metallb", "cert_manager",
                         "storage", "object_storage", "ceph", "vault", "vault_secrets", "argocd")
    assert (p.outside.origin, p.outside.netns) == ("netns", "pcf-outside")
    assert p.identities.read_only.kubeconfig.endswith("reader.conf")
    assert p.identities.full.kubeconfig.endswith("runner.conf")


def test_production_profile_is_safe_by_default():
    p = profiles.load("production")
    assert p.policy.default_mode == "read-only"
    assert not (p.policy.allow_disruptive or p.policy.allow_pool_exhaustion
                or p.policy.allow_new_production_certificates)
    assert p.components.dns.service == "coredns"
    assert p.components.runtime.name == "cri-o"
    assert p.cluster.kube_proxy == "replaced"
    assert p.components.ingress.ingress_class == "contour"
    assert p.components.storage.namespace == "rook"
    assert p.components.cert_manager.production_issuers == ("letsencrypt",)
    assert p.outside.origin == "runner"
    assert set(p.claimed) == set(COMPONENTS)


def test_profile_schema_has_a_section_for_every_component():
    assert [f.name for f in dataclasses.fields(profiles.Components)] == list(COMPONENTS)


def test_unknown_key_names_path_and_suggests_spelling(tmp_path):
    doc = local_with(budgets={**LOCAL["budgets"], "dns_p59_ms": 5})
    err = error_of(tmp_path, doc)
    assert err.path == "budgets.dns_p59_ms"
    assert err.problem == "unknown key"
    assert "dns_p95_ms" in err.fix
    assert str(tmp_path / "p.yaml") in str(err)


def test_unknown_key_without_close_match_lists_known_keys(tmp_path):
    err = error_of(tmp_path, local_with(flavour_of_the_week="blue"))
    assert err.path == "flavour_of_the_week"
    assert "remove it" in err.fix and "budgets" in err.fix


def test_wrong_type_names_expected_type_and_value(tmp_path):
    doc = local_with(budgets={**LOCAL["budgets"], "dns_p95_ms": "fast"})
    err = error_of(tmp_path, doc)
    assert err.path == "budgets.dns_p95_ms"
    assert "expected a number" in err.problem and "'fast'" in err.problem
    assert "milliseconds" in err.fix


def test_boolean_is_not_a_number(tmp_path):
    err = error_of(tmp_path, local_with(budgets={**LOCAL["budgets"], "pvc_bound_s": True}))
    assert err.path == "budgets.pvc_bound_s"


def test_wrong_type_in_list_names_the_index(tmp_path):
    doc = local_with(cluster={**LOCAL["cluster"], "nodes": ["pcf-node", 7]})
    assert error_of(tmp_path, doc).path == "cluster.nodes[1]"


def test_literal_outside_its_choices(tmp_path):
    doc = local_with(policy={**LOCAL["policy"], "default_mode": "write"})
    err = error_of(tmp_path, doc)
    assert err.path == "policy.default_mode"
    assert "read-only" in err.fix and "full" in err.fix


def test_missing_required_section(tmp_path):
    err = error_of(tmp_path, local_with(budgets=None))
    assert (err.path, err.problem) == ("budgets", "missing")


def test_missing_required_value(tmp_path):
    budgets = {k: v for k, v in LOCAL["budgets"].items() if k != "min_certificate_days"}
    err = error_of(tmp_path, local_with(budgets=budgets))
    assert err.path == "budgets.min_certificate_days"
    assert "add `budgets.min_certificate_days`" in err.fix


def test_key_without_value(tmp_path):
    doc = local_with(cluster={**LOCAL["cluster"], "dual_stack": None})
    err = error_of(tmp_path, doc)
    assert (err.path, err.problem) == ("cluster.dual_stack", "has no value")


def test_claimed_component_needs_its_names(tmp_path):
    components = {**LOCAL["components"], "metallb": {"claimed": True, "pools": ["pool-1"]}}
    err = error_of(tmp_path, local_with(components=components))
    assert err.path == "components.metallb.namespace"
    assert "metallb is claimed" in err.problem
    assert "claimed to false" in err.fix


def test_unclaimed_component_may_leave_names_out():
    p = profiles.load("local")
    assert p.component("cilium") is not None and not p.claims("cilium")
    assert not profiles.load("kind").claims("argocd")   # given as {claimed: false}, no names


def test_checked_values(tmp_path):
    dns = {**LOCAL["components"]["dns"], "ip": "ten.nine"}
    assert error_of(tmp_path, local_with(components={**LOCAL["components"], "dns": dns})).path == "components.dns.ip"
    neg = error_of(tmp_path, local_with(budgets={**LOCAL["budgets"], "lb_address_s": -1}))
    assert neg.path == "budgets.lb_address_s" and "above zero" in neg.problem


def test_namespaces_cannot_be_allowlisted(tmp_path):
    doc = local_with(write_allowlist={"cluster_scoped": ["namespaces"], "namespaced": []})
    err = error_of(tmp_path, doc)
    assert err.path == "write_allowlist.cluster_scoped[0]"
    assert "always allowed" in err.problem


def test_netns_origin_needs_a_netns(tmp_path):
    err = error_of(tmp_path, local_with(outside={"origin": "netns"}))
    assert err.path == "outside.netns"


def test_broken_yaml_names_line(tmp_path):
    err = error_of(tmp_path, "name: local\ncluster: [unclosed\n")
    assert "not valid YAML" in err.problem and "line" in err.problem


def test_top_level_not_a_mapping(tmp_path):
    err = error_of(tmp_path, "- just\n- a list\n")
    assert err.path == "" and "expected a mapping" in err.problem


def test_unknown_profile_name_lists_shipped_ones():
    with pytest.raises(ProfileError) as caught:
        profiles.load("staging")
    assert "local" in caught.value.fix and "production" in caught.value.fix


def test_missing_profile_path(tmp_path):
    with pytest.raises(ProfileError) as caught:
        profiles.load(str(tmp_path / "nope.yaml"))
    assert caught.value.problem == "no such file"


def test_set_overrides_one_value():
    p = profiles.load("local", ["budgets.dns_p95_ms=80", "components.dns.replicas=2"])
    assert p.budgets.dns_p95_ms == 80.0 and p.components.dns.replicas == 2
    assert profiles.load("local").budgets.dns_p95_ms == 50.0  # the file itself is untouched


def test_set_keeps_text_as_typed_for_text_fields():
    assert profiles.load("local", ["components.runtime.min_version=2.10"]).components.runtime.min_version == "2.10"


def test_set_is_validated_like_the_file_and_named_in_the_error():
    with pytest.raises(ProfileError) as caught:
        profiles.load("local", ["budgets.dns_p95_ms=fast"])
    assert caught.value.path == "budgets.dns_p95_ms"
    assert "--set budgets.dns_p95_ms=fast" in caught.value.source


def test_set_unknown_key():
    with pytest.raises(ProfileError) as caught:
        profiles.load("local", ["components.dns.replica=2"])
    assert caught.value.path == "components.dns.replica" and "replicas" in caught.value.fix


def test_set_without_equals():
    with pytest.raises(ProfileError) as caught:
        profiles.load("local", ["budgets.dns_p95_ms"])
    assert "key.path=value" in caught.value.problem


def test_set_below_a_scalar():
    with pytest.raises(ProfileError) as caught:
        profiles.load("local", ["name.first=x"])
    assert caught.value.path == "name"


def test_set_can_claim_a_component_only_with_its_names():
    with pytest.raises(ProfileError) as caught:
        profiles.load("local", ["components.cilium.claimed=true"])
    assert caught.value.path == "components.cilium.namespace"
    p = profiles.load("local", ["components.cilium.claimed=true", "components.cilium.namespace=cilium"])
    assert p.claims("cilium")


def test_waivers_count_until_their_expiry_day():
    p = profiles.load("local", ["waivers=[{promise: dns/resolve/service-fqdn, reason: ticket 7, expires: 2030-06-30}]"])
    promise = "dns/resolve/service-fqdn"
    assert p.waiver(promise, dt.date(2030, 6, 30)).reason == "ticket 7"
    assert p.waiver(promise, dt.date(2030, 7, 1)) is None
    assert p.waiver("dns/resolve/other", dt.date(2030, 1, 1)) is None


def test_waiver_needs_a_promise_id_and_a_date(tmp_path):
    bad_id = error_of(tmp_path, local_with(waivers=[{"promise": "DNS", "reason": "r", "expires": "2030-01-01"}]))
    assert bad_id.path == "waivers[0].promise"
    bad_date = error_of(tmp_path, local_with(waivers=[{"promise": "dns/a/b", "reason": "r", "expires": "soon"}]))
    assert bad_date.path == "waivers[0].expires" and "YYYY-MM-DD" in bad_date.fix


def test_image_prefix_goes_before_the_upstream_reference():
    assert profiles.Images().image("registry.k8s.io/pause:3.10") == "registry.k8s.io/pause:3.10"
    mirrored = profiles.Images(registry_prefix="mirror.example.org/cache/")
    assert mirrored.image("registry.k8s.io/pause:3.10") == "mirror.example.org/cache/registry.k8s.io/pause:3.10"


def test_allowlist_pairs():
    allow = profiles.load("production").write_allowlist
    assert allow.allows_namespaced("applications.argoproj.io", "argocd")
    assert not allow.allows_namespaced("applications.argoproj.io", "default")
