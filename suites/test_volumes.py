"""Persistent volumes: each StorageClass the profile claims keeps the promises users build on.

Every test is run once per claimed class (components.storage.storage_classes), with what the
profile claims of it: ReadWriteMany (rwx_classes), expansion (expandable_classes), snapshots
(snapshot_classes). A capability the profile does not claim for a class is skipped with that
reason, never passed. Pods are the shared probe image with the claim at /data; every byte check
is a SHA-256 computed inside the pod that reads, so what is compared is what a user would read.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client as k8s

from conformance import pods
from conformance.probes import volumes
from conformance.waiting import WaitTimeout, wait_for
from fixtures.options import settings

DATA_KIB = 1024
REQUEST_TIMEOUT = (5, 30)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per claimed StorageClass, and per claimed VolumeSnapshotClass."""
    profile = settings(metafunc.config).profile
    spec = profile.components.storage
    if "storage_class" in metafunc.fixturenames:
        metafunc.parametrize("storage_class", list((spec.storage_classes if spec else None) or ()))
    if "snapshot_class" in metafunc.fixturenames:
        classes = list(spec.snapshot_classes) if spec else []
        metafunc.parametrize("snapshot_class", classes or [pytest.param(None, id="none", marks=pytest.mark.skip(
            reason=f"profile {profile.name} claims no VolumeSnapshotClass (components.storage.snapshot_classes "
                   f"is empty){_why_not(spec, 'snapshots')}"))])


def _why_not(spec, capability: str) -> str:
    if spec is not None and spec.provisioner == "local-path":
        return f": rancher's local-path-provisioner serves no {capability} and no CSI driver that does runs here"
    return ""


def _size(profile) -> str:
    return f"{profile.components.storage.test_size_mi}Mi"


def _class(kube, name: str) -> k8s.V1StorageClass:
    try:
        return k8s.StorageV1Api(kube).read_storage_class(name, _request_timeout=REQUEST_TIMEOUT)
    except k8s.ApiException as exc:
        pytest.fail(f"StorageClass {name} (claimed by the profile) cannot be read: {exc.status} {exc.reason}",
                    pytrace=False)


def _bound_pod(kube, profile, namespace: str, storage_class: str, claim: str = "data", pod: str = "user",
               access_mode: str = "ReadWriteOnce") -> volumes.Bound:
    """A claim of the class and a pod using it; returns once the claim is Bound (within the
    profile's budget) and the pod is Ready. Binding is timed from the pod's create, since a
    class may wait for its first consumer."""
    sc = _class(kube, storage_class)
    volumes.create_claim(kube, namespace, claim, storage_class, _size(profile), access_mode, profile.images)
    t0 = time.monotonic()
    volumes.create_pod(kube, namespace, pod, claim, profile.images)
    budget = profile.budget("pvc_bound_s")
    try:
        bound = volumes.wait_bound(kube, namespace, claim, t0, budget)
    except WaitTimeout as exc:
        raise AssertionError(f"StorageClass {storage_class}: its provisioner {sc.provisioner} did not bind "
                             f"PVC {namespace}/{claim} within {budget:g} s (budgets.pvc_bound_s)\n"
                             f"{exc.last_state}") from None
    pods.wait_pod(kube, namespace, pod)
    return bound


def _second_pod(kube, profile, namespace: str, pod: str, claim: str = "data") -> None:
    volumes.create_pod(kube, namespace, pod, claim, profile.images)
    pods.wait_pod(kube, namespace, pod)


def _delete_pod(kube, dyn, namespace: str, pod: str) -> None:
    from conformance.run import delete_and_wait
    delete_and_wait(dyn, "v1", "Pod", pod, namespace)


@pytest.mark.storage
@pytest.mark.writes
@pytest.mark.promise("storage/claim/binds-within-budget")
@pytest.mark.covers("storage/class", by="storage_class")
def test_claim_binds_within_budget(kube, profile, namespace, storage_class, record_measurement):
    """A claim of each StorageClass MUST be Bound within budgets.pvc_bound_s of its first user's creation."""
    bound = _bound_pod(kube, profile, namespace, storage_class)
    m = record_measurement(f"pvc bound ({storage_class})", bound.seconds, "s", budget="pvc_bound_s")
    assert m.value <= m.budget, f"{m}\n{bound.state}"


@pytest.mark.storage
@pytest.mark.writes
@pytest.mark.promise("storage/volume/data-survives-pod")
@pytest.mark.covers("storage/class", by="storage_class")
def test_data_written_by_one_pod_is_read_by_the_next(kube, dyn, profile, namespace, storage_class):
    """Bytes a pod writes to a volume MUST read back identical in a new pod on the same claim.

    The writer is deleted (and gone) before the reader starts, so the bytes come from the volume.
    """
    _bound_pod(kube, profile, namespace, storage_class, pod="writer")
    wrote = volumes.write_random(kube, namespace, "writer", "/data/payload", DATA_KIB)
    assert wrote.sha256 and wrote.size == DATA_KIB * 1024, str(wrote)
    _delete_pod(kube, dyn, namespace, "writer")
    _second_pod(kube, profile, namespace, "reader")
    read = volumes.digest(kube, namespace, "reader", "/data/payload")
    assert (read.sha256, read.size) == (wrote.sha256, wrote.size), f"wrote: {wrote}\nread: {read}"


@pytest.mark.storage
@pytest.mark.writes
@pytest.mark.promise("storage/volume/throughput")
@pytest.mark.covers("storage/class", by="storage_class")
def test_sequential_throughput_is_reported(kube, profile, namespace, storage_class, record_measurement):
    """A volume MUST take a sequential synced write and a sequential read of the profile's size, and report their rates."""
    _bound_pod(kube, profile, namespace, storage_class)
    size = profile.components.storage.throughput_mb
    tp = volumes.throughput(kube, namespace, "user", size)
    assert tp.write_mib_s and tp.read_mib_s, str(tp)
    record_measurement(f"volume sequential write ({storage_class})", tp.write_mib_s, "MiB/s")
    record_measurement(f"volume sequential read ({storage_class})", tp.read_mib_s, "MiB/s")


@pytest.mark.storage
@pytest.mark.writes
@pytest.mark.promise("storage/volume/rwx-shared")
@pytest.mark.covers("storage/rwx-class", by="storage_class")
def test_rwx_volume_is_shared_by_two_pods_writing_at_once(kube, profile, namespace, storage_class):
    """A ReadWriteMany volume MUST take writes from two pods at once, and each MUST read the other's bytes."""
    if storage_class not in profile.components.storage.rwx_classes:
        pytest.skip(f"profile {profile.name} does not claim ReadWriteMany for {storage_class} "
                    f"(components.storage.rwx_classes){_why_not(profile.components.storage, 'shared volumes')}")
    _bound_pod(kube, profile, namespace, storage_class, pod="one", access_mode="ReadWriteMany")
    _second_pod(kube, profile, namespace, "two")
    with ThreadPoolExecutor(2) as pool:
        wrote = dict(zip(("one", "two"), pool.map(
            lambda p: volumes.write_random(kube, namespace, p, f"/data/from-{p}", DATA_KIB), ("one", "two"))))
    assert all(w.sha256 for w in wrote.values()), "\n".join(map(str, wrote.values()))
    read = {reader: volumes.digest(kube, namespace, reader, f"/data/from-{writer}")
            for reader, writer in (("one", "two"), ("two", "one"))}
    assert {r: d.sha256 for r, d in read.items()} == {"one": wrote["two"].sha256, "two": wrote["one"].sha256}, \
        "\n".join(map(str, [*wrote.values(), *read.values()]))


@pytest.mark.storage
@pytest.mark.writes
@pytest.mark.promise("storage/volume/expansion")
@pytest.mark.covers("storage/expandable-class", by="storage_class")
def test_expanding_a_claim_grows_the_filesystem_in_the_pod(kube, profile, namespace, storage_class, record_measurement):
    """Raising a claim's request MUST grow the filesystem the running pod sees.

    Measured with df inside the pod, because a PV's capacity can change while the filesystem does not.
    """
    if storage_class not in profile.components.storage.expandable_classes:
        pytest.skip(f"profile {profile.name} does not claim expansion for {storage_class} "
                    f"(components.storage.expandable_classes){_why_not(profile.components.storage, 'expansion')}")
    _bound_pod(kube, profile, namespace, storage_class)
    before = volumes.filesystem_size(kube, namespace, "user")
    assert before.size_bytes, str(before)
    grown = profile.components.storage.test_size_mi * 2
    t0 = time.monotonic()
    k8s.CoreV1Api(kube).patch_namespaced_persistent_volume_claim(
        "data", namespace, {"spec": {"resources": {"requests": {"storage": f"{grown}Mi"}}}},
        _request_timeout=REQUEST_TIMEOUT)
    after = wait_for(f"the filesystem of PVC {namespace}/data to grow past {before.size_bytes} bytes in pod user",
                     lambda: volumes.filesystem_size(kube, namespace, "user"),
                     until=lambda s: (s.size_bytes or 0) > before.size_bytes * 1.5, timeout="volume_expanded", interval=2)
    record_measurement(f"volume expansion seen in pod ({storage_class})", time.monotonic() - t0, "s")
    assert after.size_bytes > before.size_bytes, f"before: {before}\nafter: {after}"


@pytest.mark.storage
@pytest.mark.writes
@pytest.mark.promise("storage/snapshot/restores-same-bytes")
@pytest.mark.covers("storage/snapshot-class", by="snapshot_class")
def test_snapshot_restores_into_a_new_claim_with_the_same_bytes(kube, dyn, profile, namespace, snapshot_class):
    """A VolumeSnapshot of a claim MUST restore into a new claim holding the same bytes."""
    snap_classes = dyn.resources.get(api_version="snapshot.storage.k8s.io/v1", kind="VolumeSnapshotClass")
    driver = snap_classes.get(name=snapshot_class).to_dict()["driver"]
    classes = [c for c in profile.components.storage.storage_classes or ()
               if _class(kube, c).provisioner == driver]
    assert classes, f"no claimed StorageClass is provisioned by {driver}, the driver of {snapshot_class}"
    _bound_pod(kube, profile, namespace, classes[0], pod="writer")
    wrote = volumes.write_random(kube, namespace, "writer", "/data/payload", DATA_KIB)
    assert wrote.sha256, str(wrote)
    snapshots = dyn.resources.get(api_version="snapshot.storage.k8s.io/v1", kind="VolumeSnapshot")
    snapshots.create(namespace=namespace, body={
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "snap"},
        "spec": {"volumeSnapshotClassName": snapshot_class, "source": {"persistentVolumeClaimName": "data"}}})
    wait_for(f"VolumeSnapshot {namespace}/snap ({snapshot_class}) to be ready to use",
             lambda: snapshots.get(name="snap", namespace=namespace).to_dict().get("status") or {},
             until=lambda st: st.get("readyToUse") is True, timeout="snapshot_ready", interval=2)
    k8s.CoreV1Api(kube).create_namespaced_persistent_volume_claim(namespace, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "restored"},
        "spec": {"storageClassName": classes[0], "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": _size(profile)}},
                 "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}}},
        _request_timeout=REQUEST_TIMEOUT)
    _second_pod(kube, profile, namespace, "reader", claim="restored")
    read = volumes.digest(kube, namespace, "reader", "/data/payload")
    assert read.sha256 == wrote.sha256, f"wrote: {wrote}\nrestored: {read}"


@pytest.mark.storage
@pytest.mark.writes
@pytest.mark.promise("storage/claim/reclaim-policy")
@pytest.mark.covers("storage/class", by="storage_class")
def test_deleted_claim_releases_volume_as_reclaim_policy_says(kube, dyn, profile, namespace, storage_class):
    """After its claim is deleted, a volume MUST go (Delete) or stay Released (Retain), as its class says.

    A provisioner deletes the PV only once it has removed the backing volume, so the PV's
    disappearance stands for both.
    """
    bound = _bound_pod(kube, profile, namespace, storage_class)
    core = k8s.CoreV1Api(kube)
    pv = core.read_persistent_volume(bound.state.volume, _request_timeout=REQUEST_TIMEOUT)
    policy = pv.spec.persistent_volume_reclaim_policy
    _delete_pod(kube, dyn, namespace, "user")
    from conformance.run import delete_and_wait
    delete_and_wait(dyn, "v1", "PersistentVolumeClaim", "data", namespace)

    def pv_state() -> str:
        try:
            return core.read_persistent_volume(pv.metadata.name, _request_timeout=REQUEST_TIMEOUT).status.phase
        except k8s.ApiException as exc:
            if exc.status == 404:
                return "gone"
            raise

    want = {"Delete": "gone", "Retain": "Released"}.get(policy, "gone")
    final = wait_for(f"PV {pv.metadata.name} (reclaim policy {policy}) to be {want} after its claim was deleted",
                     pv_state, until=lambda s: s == want, timeout="object_deleted")
    assert final == want
