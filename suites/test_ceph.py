"""Ceph: the storage cluster behind the platform's volumes and buckets is healthy and whole.

Read-only: Ceph's own view comes from its manager's Prometheus endpoint (the profile's
components.ceph.metrics_url, or metrics_service through the API server), so the same checks run
on the local cluster and in production. StorageClasses are checked against what exists: every
pool, filesystem, object store and namespace their parameters name. Rook's own objects are read
where the profile claims Rook; their status is Rook's to write.
"""
from __future__ import annotations

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from conformance.probes import ceph

REQUEST_TIMEOUT = (5, 30)


@pytest.fixture
def ceph_state(profile, kube) -> ceph.CephState:
    spec = profile.components.ceph
    if not (spec.metrics_url or spec.metrics_service):
        pytest.fail(f"profile {profile.name} names no Ceph metrics endpoint. Fix: set "
                    "components.ceph.metrics_url or components.ceph.metrics_service", pytrace=False)
    found = ceph.read(kube, spec.metrics_url, spec.metrics_service)
    assert found.error is None, (f"{found}; is the Ceph manager (its prometheus module) running and "
                                 f"reachable at {found.source}?")
    return found


@pytest.mark.ceph
@pytest.mark.promise("ceph/health/ok")
def test_ceph_reports_health_ok(ceph_state, record_measurement):
    """Ceph MUST report HEALTH_OK; any warning or error is listed by its check name."""
    record_measurement("ceph metrics read", ceph_state.elapsed_ms, "ms")
    assert (ceph_state.health, ceph_state.checks) == ("HEALTH_OK", ()), str(ceph_state)


@pytest.mark.ceph
@pytest.mark.promise("ceph/mons/quorum")
def test_every_monitor_is_in_quorum(profile, ceph_state):
    """Every monitor the profile expects MUST be in quorum."""
    want = profile.components.ceph.mons
    in_quorum = sorted(m for m, q in ceph_state.mons.items() if q)
    out = sorted(m for m, q in ceph_state.mons.items() if not q)
    assert (len(in_quorum), out) == (want, []), (
        f"{len(in_quorum)} of {want} expected monitors in quorum; out of quorum: {out or 'none'}\n{ceph_state}")


@pytest.mark.ceph
@pytest.mark.promise("ceph/osds/up-and-in")
def test_expected_osds_are_up_and_in(profile, ceph_state):
    """The number of OSDs the profile expects MUST be up and in; each one that is not is named."""
    want = profile.components.ceph.osds
    down = sorted(o for o, up in ceph_state.osds_up.items() if not up)
    out = sorted(o for o, i in ceph_state.osds_in.items() if not i)
    up_in = [o for o in ceph_state.osds_up if ceph_state.osds_up[o] and ceph_state.osds_in.get(o)]
    assert (len(up_in), down, out) == (want, [], []), (
        f"{len(up_in)} of {want} expected OSDs up and in; down: {down or 'none'}, out: {out or 'none'}")


@pytest.mark.ceph
@pytest.mark.promise("ceph/classes/references-exist")
def test_storage_classes_name_what_exists(profile, kube, dyn, ceph_state):
    """Every StorageClass the profile claims MUST name only pools, filesystems, object stores and namespaces that exist.

    A class naming an object store in a namespace that holds no such store is named with both.
    """
    names = [*(profile.components.storage.storage_classes or ())] if profile.claims("storage") else []
    obs = profile.components.object_storage
    if profile.claims("object_storage") and obs.bucket_storage_class:
        names.append(obs.bucket_storage_class)
    assert names, f"profile {profile.name} claims no StorageClass to check"
    storage = k8s.StorageV1Api(kube)
    namespaces = {n.metadata.name for n in k8s.CoreV1Api(kube).list_namespace(_request_timeout=REQUEST_TIMEOUT).items}
    stores = _object_stores(dyn) if profile.components.ceph.rook else None
    missing, checked = [], []
    for name in names:
        try:
            sc = storage.read_storage_class(name, _request_timeout=REQUEST_TIMEOUT)
        except k8s.ApiException as exc:
            missing.append(f"StorageClass {name} (claimed by the profile): {exc.status} {exc.reason}")
            continue
        refs = ceph.references(name, sc.parameters or {}, set(ceph_state.pools) | set(profile.components.ceph.pools),
                               set(ceph_state.filesystems), stores if stores is not None else
                               ({("", g) for g in ceph_state.gateways} or None), namespaces)
        checked += refs
        missing += [str(r) for r in refs if not r.exists]
    assert missing == [], "; ".join(missing) + f"\nchecked: {[str(r) for r in checked]}"


def _object_stores(dyn) -> set[tuple[str, str]]:
    try:
        resource = dyn.resources.get(api_version="ceph.rook.io/v1", kind="CephObjectStore")
    except ResourceNotFoundError:
        return set()
    return {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in resource.get().to_dict()["items"]}


@pytest.mark.ceph
@pytest.mark.promise("ceph/rook/objects-ready")
@pytest.mark.covers("ceph/rook")
def test_rook_objects_are_ready(profile, dyn):
    """Where Rook runs Ceph, its CephCluster, block pools, filesystems and object stores MUST be Ready."""
    spec = profile.components.ceph
    if not spec.rook:
        pytest.skip(f"profile {profile.name} does not claim Rook (components.ceph.rook: false): Rook and its "
                    "CRDs cannot be had on this machine; the state reading is unit-tested on Rook's documented shapes")
    found = []
    for kind in ("CephCluster", "CephBlockPool", "CephFilesystem", "CephObjectStore"):
        try:
            resource = dyn.resources.get(api_version="ceph.rook.io/v1", kind=kind)
        except ResourceNotFoundError:
            pytest.fail(f"Rook is claimed (components.ceph.rook) but the API serves no {kind}", pytrace=False)
        found += [ceph.rook_object(o) for o in resource.get(namespace=spec.namespace).to_dict()["items"]]
    clusters = [o for o in found if o.kind == "CephCluster"]
    assert clusters, f"no CephCluster in namespace {spec.namespace}"
    assert [str(o) for o in found if not o.ready] == [], "\n".join(map(str, found))
