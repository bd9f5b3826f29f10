"""The edge's read-only checks pass on healthy production-like objects and name the broken ones.

Seeded with the admin identity, and computed by the real programs: a pool shaped like
production's pool-1 (its own range on the LAN, autoAssign off), a Service `contour-envoy` that
asks MetalLB for the pool's first address, as production pins .81, and a Service
`wrong-holder` that asks for the second. A profile copied from `local` then claims them, and
the suites run read-only as the reader identity, as they would against production. Broken
profiles name a pinned address the wrong Service holds, a pool whose range differs, and a
declared host redirect nothing answers. Everything seeded is removed in `finally`.
"""
from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from conformance import manifests, run as runs, waiting
from conformance.probes import loadbalancer as lb
from tests.integration.core_runs import run_suites
from tinysuite import derived_profile

from tiers import needs

pytestmark = [needs("metallb", "metallb-pool", "contour")]

METALLB = "metallb-system"
POOL = "pcf-seed-pool-1"
RANGES = ("192.168.77.230-192.168.77.233", "fd00:77::230-fd00:77::233")
FIRST, SECOND = "192.168.77.230", "192.168.77.231"


def _service(name: str, address: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": name, "annotations": {lb.POOL_ANNOTATION: POOL, lb.ADDRESSES_ANNOTATION: address}},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}}


@pytest.fixture(scope="module")
def seeded(admin_api):
    core, dyn = k8s.CoreV1Api(admin_api), DynamicClient(admin_api)
    ns = f"pcf-seed-{uuid.uuid4().hex[:6]}"
    pool_docs = lb.pool_documents(POOL, RANGES)
    core.create_namespace({"metadata": {"name": ns, "labels": {runs.MANAGED_BY_LABEL: runs.MANAGED_BY}}})
    try:
        manifests.apply(pool_docs, admin_api, namespace=METALLB)
        manifests.apply([_service("contour-envoy", FIRST), _service("wrong-holder", SECOND)], admin_api, namespace=ns)
        for name in ("contour-envoy", "wrong-holder"):
            waiting.wait_for(f"MetalLB to give Service {ns}/{name} its address", lambda name=name: lb.service(
                admin_api, ns, name), until=lambda s: s.complete, timeout=60.0, interval=0.5)
        yield ns
    finally:
        core.delete_namespace(ns)
        waiting.wait_for(f"namespace {ns} to be gone", lambda: [n.metadata.name for n in core.list_namespace().items],
                         until=lambda names: ns not in names, timeout="namespace_deleted")
        for doc in reversed(pool_docs):
            runs.delete_and_wait(dyn, doc["apiVersion"], doc["kind"], POOL, METALLB)


def _read_only(tmp_path, metallb: dict, ingress: dict | None = None, keyword: str = "pools_exist or pinned"):
    components = {"metallb": metallb, **({"ingress": ingress} if ingress else {})}
    profile = derived_profile(tmp_path / "profile.yaml", components=components)
    return run_suites(["suites/test_loadbalancer.py", "suites/test_ingress.py"], tmp_path, mode="read-only",
                      profile=profile, keyword=keyword)


def _metallb(ns: str, pinned_address: str = FIRST, ranges=RANGES) -> dict:
    return {"pools": ["pcf-lan", POOL],
            "pool_addresses": [{"pool": "pcf-lan", "addresses": ["192.168.77.200-192.168.77.219", "fd00:77::200-fd00:77::219"]},
                               {"pool": POOL, "addresses": list(ranges)}],
            "pinned": [{"address": pinned_address, "service": f"{ns}/contour-envoy"}]}


def test_metallb_checks_pass_on_the_seeded_healthy_pool_and_pin(seeded, tmp_path):
    run = _read_only(tmp_path, _metallb(seeded))
    assert run.outcomes("metallb/pool/matches-profile") == {"passed"}, run.output
    assert run.outcomes("metallb/address/pinned-held-by-expected-service") == {"passed"}, run.output


def test_metallb_checks_name_the_wrong_holder_and_the_pool_whose_range_differs(seeded, tmp_path):
    run = _read_only(tmp_path, _metallb(seeded, SECOND, ranges=("192.168.77.230-192.168.77.239", RANGES[1])))
    assert run.exit_code == 1, run.output
    [pinned] = run.failures("metallb/address/pinned-held-by-expected-service")
    assert f"{SECOND} is held by ['{seeded}/wrong-holder'], the profile names {seeded}/contour-envoy" in pinned["reason"], pinned
    [pools] = run.failures("metallb/pool/matches-profile")
    assert f"IPAddressPool {METALLB}/{POOL}: {list(RANGES)}" in pools["reason"], pools  # the pool that differs leads
    assert "(profile: ['192.168.77.230-192.168.77.239'" in pools["reason"], pools


def test_ingress_checks_pass_on_the_live_controller_and_name_a_redirect_nothing_answers(tmp_path):
    (tmp_path / "healthy").mkdir()
    healthy = _read_only(tmp_path / "healthy", {}, keyword="controller_serves or unknown_host or declared_host")
    assert healthy.exit_code == 0, healthy.output
    broken = _read_only(tmp_path, {}, {"host_redirects": [{"from_host": "www.pcf-nowhere.test", "to_host": "www.pcf.test"}]},
                        keyword="declared_host")
    assert broken.exit_code == 1, broken.output
    [failure] = broken.failures("ingress/redirect/declared-hosts")
    assert "www.pcf-nowhere.test" in failure["reason"] + broken.output and "HTTP 404" in broken.output, failure
