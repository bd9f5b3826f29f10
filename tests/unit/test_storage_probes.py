"""Storage probes without a cluster: Ceph's metrics (a real capture of the manager's prometheus
module), StorageClass references, Rook's object states on the shapes Rook documents, the S3
admin credentials, and busybox's output as the volume probes read it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance import InputError, outside, outside_s3, profile as profiles
from conformance.pods import ExecResult
from conformance.probes import ceph, volumes

DATA = Path(__file__).resolve().parents[1] / "data"
METRICS = (DATA / "ceph-mgr-metrics.txt").read_text()


def test_metrics_of_a_healthy_cluster_give_its_facts():
    found = ceph.state(ceph.parse(METRICS), "capture")
    assert (found.health, found.checks) == ("HEALTH_OK", ())
    assert found.mons == {"mon.a": True}
    assert (found.osds_up, found.osds_in) == ({"osd.0": True}, {"osd.0": True})
    assert ".rgw.root" in found.pools and found.gateways == ("rgw.pcf",)


def test_a_warning_is_named_by_its_check():
    text = METRICS.replace("ceph_health_status 0.0", "ceph_health_status 1.0").replace(
        "ceph_osd_up{ceph_daemon=\"osd.0\"} 1.0", "ceph_osd_up{ceph_daemon=\"osd.0\"} 0.0")
    text += '\nceph_health_detail{name="OSD_DOWN",severity="HEALTH_WARN"} 1.0\n'
    found = ceph.state(ceph.parse(text), "capture")
    assert (found.health, found.checks, found.osds_up) == ("HEALTH_WARN", ("OSD_DOWN (HEALTH_WARN)",), {"osd.0": False})
    assert "OSD_DOWN" in str(found)


def test_labels_with_escaped_quotes_and_comments_parse():
    samples = ceph.parse('# HELP x y\nx{a="b\\"c",d="e"} 2\nbad line\n')
    assert samples == [ceph.Sample("x", {"a": 'b"c', "d": "e"}, 2.0)]


def test_references_name_each_missing_pool_filesystem_store_and_namespace():
    params = {"pool": "replicapool", "clusterID": "rook", "fsName": "myfs",
              "csi.storage.k8s.io/provisioner-secret-namespace": "gone", "imageFeatures": "layering"}
    refs = ceph.references("rbd-nvme", params, {"other"}, {"myfs"}, None, {"rook"})
    assert {(r.parameter, r.kind, r.exists) for r in refs} == {
        ("pool", "pool", False), ("clusterID", "namespace", True), ("fsName", "filesystem", True),
        ("csi.storage.k8s.io/provisioner-secret-namespace", "namespace", False)}
    pool = next(r for r in refs if r.parameter == "pool")
    assert str(pool) == "StorageClass rbd-nvme: pool='replicapool' names a pool that does not exist"


def test_an_object_store_in_the_wrong_namespace_is_named_with_it():
    params = {"objectStoreName": "rgw-hdd", "objectStoreNamespace": "default"}
    refs = ceph.references("rgw-hdd", params, set(), set(), {("rook", "rgw-hdd")}, {"rook", "default"})
    store = next(r for r in refs if r.parameter == "objectStoreName")
    assert (store.exists, store.kind) == (False, "object store in namespace 'default'")
    ok = ceph.references("rgw-hdd", {**params, "objectStoreNamespace": "rook"}, set(), set(),
                         {("rook", "rgw-hdd")}, {"rook"})
    assert all(r.exists for r in ok)


# Status shapes as Rook's CRD documentation shows them (CephCluster, CephObjectStore).
CLUSTER_READY = {"kind": "CephCluster", "metadata": {"name": "ceph", "namespace": "rook"},
                 "status": {"phase": "Ready", "ceph": {"health": "HEALTH_OK", "lastChecked": "2026-01-01T00:00:00Z"}}}
CLUSTER_WARN = {"kind": "CephCluster", "metadata": {"name": "ceph", "namespace": "rook"},
                "status": {"phase": "Ready", "ceph": {"health": "HEALTH_WARN", "details": {
                    "OSD_DOWN": {"message": "1 osds down", "severity": "HEALTH_WARN"}}}}}
STORE_CONNECTED = {"kind": "CephObjectStore", "metadata": {"name": "rgw-hdd", "namespace": "rook"},
                   "status": {"phase": "Connected", "info": {"endpoint": "http://rook-ceph-rgw-rgw-hdd.rook.svc:80"}}}
POOL_FAILED = {"kind": "CephBlockPool", "metadata": {"name": "replicapool", "namespace": "rook"},
               "status": {"phase": "Failure"}}
FS_NO_STATUS = {"kind": "CephFilesystem", "metadata": {"name": "myfs", "namespace": "rook"}}


@pytest.mark.parametrize("obj, ready", [(CLUSTER_READY, True), (CLUSTER_WARN, False), (STORE_CONNECTED, True),
                                        (POOL_FAILED, False), (FS_NO_STATUS, False)])
def test_rook_object_readiness_follows_the_status_rook_writes(obj, ready):
    assert ceph.rook_object(obj).ready is ready


def test_a_rook_cluster_warning_names_its_check():
    assert "OSD_DOWN: 1 osds down" in str(ceph.rook_object(CLUSTER_WARN))


def test_admin_credentials_missing_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv(outside_s3.ACCESS_KEY_ENV, raising=False)
    with pytest.raises(InputError, match="admin_credentials"):
        outside_s3.admin_keys(None)
    with pytest.raises(InputError, match=str(tmp_path / "none.json")):
        outside_s3.admin_keys(str(tmp_path / "none.json"))
    good = tmp_path / "keys.json"
    good.write_text(json.dumps({"access_key": "AK", "secret_key": "SK"}))
    keys = outside_s3.admin_keys(str(good))
    assert (keys.access_key, keys.secret_key) == ("AK", "SK") and "SK" not in repr(keys)
    monkeypatch.setenv(outside_s3.ACCESS_KEY_ENV, "EA")
    monkeypatch.setenv(outside_s3.SECRET_KEY_ENV, "ES")
    assert outside_s3.admin_keys(str(good)).access_key == "EA"


def test_the_sweeper_reaches_s3_only_where_buckets_come_from_the_admin_api(tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"access_key": "AK", "secret_key": "SK"}))
    local = profiles.load("local", [f"components.object_storage.admin_credentials={keys}"])
    assert "s3" in outside.ADAPTERS
    adapter = outside_s3.from_profile(local)
    assert (adapter.system, adapter.endpoint, adapter.region) == ("s3", "http://192.168.77.2:7480", "default")
    assert outside_s3.from_profile(profiles.load("production")) is None  # ObjectBucketClaims: the namespace takes them


def _exec(stdout: str = "", stderr: str = "", code: int = 0) -> ExecResult:
    return ExecResult("ns", "pod", ("sh",), code, stdout, stderr, 0.1)


def test_busybox_dd_rates_and_digests_are_read():
    # Captured from the probe image's busybox: `time dd` prints records, then the times.
    out = "64+0 records in\n64+0 records out\nreal\t0m 0.50s\nuser\t0m 0.00s\nsys\t0m 0.04s\n"
    assert volumes._rate(_exec(stderr=out)) == pytest.approx(128.0)
    assert volumes._rate(_exec(stderr=out.replace("0m 0.50s", "0m 0.00s"))) == pytest.approx(6400.0)
    assert volumes._rate(_exec(stderr="dd: can't open '/x': No such file\nreal\t0m 0.00s", code=1)) is None
    sha = "a" * 64
    found = volumes._digest(_exec(f"{sha}  /data/payload\n1048576\n"), "/data/payload")
    assert (found.sha256, found.size) == (sha, 1048576)
    assert volumes._digest(_exec("", "sha256sum: /data/payload: No such file", 1), "/data/payload").sha256 is None
