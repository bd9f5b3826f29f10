"""Object storage: S3 buckets the platform hands out work for what users do with them.

Every test talks to the profile's S3 endpoint with boto3 (path-style, the profile's region), on
a bucket the run provisions for it (fixtures/storage.py: radosgw's admin API or an
ObjectBucketClaim, always under the outside-write guard's S3 prefix) and removes after it.
Operation latencies are reported as measurements; the S3 endpoint is reached from the runner,
and a presigned URL from where the platform's users stand (the profile's outside origin).
"""
from __future__ import annotations

import os

import pytest

from conformance.probes import s3

OBJECT_BYTES = 256 * 1024
PRESIGN_S = 300


def _put(bucket, key: str, body: bytes) -> None:
    """One object the test needs in place before its check."""
    put = s3.timed("PutObject", f"{bucket.name}/{key}", lambda: bucket.client().put_object(
        Bucket=bucket.name, Key=key, Body=body))
    assert put.ok, str(put)


def _report(record_measurement, ops) -> None:
    for op in ops:
        if op.ok:
            record_measurement(f"s3 {op.op} latency", op.elapsed_ms, "ms")


@pytest.mark.object_storage
@pytest.mark.writes
@pytest.mark.promise("object-storage/bucket/lifecycle")
def test_bucket_is_created_listed_and_deleted(profile, new_bucket, record_measurement):
    """A user MUST create a bucket, see it in its bucket list, and delete it so it is gone.

    The provisioned bucket proves creation; a second bucket of the same user is made, listed
    and deleted here, so deletion is proven on a bucket the user owns.
    """
    bucket = new_bucket()
    client = bucket.client()
    listed = s3.timed("ListBuckets", "-", lambda: [b["Name"] for b in client.list_buckets()["Buckets"]])
    assert listed.ok and bucket.name in listed.result, f"{listed}: {listed.result}"
    second = bucket.name[: 63 - 3] + "-b2"
    made = s3.timed("CreateBucket", second, lambda: client.create_bucket(Bucket=second))
    assert made.ok, str(made)
    try:
        head = s3.timed("HeadBucket", second, lambda: client.head_bucket(Bucket=second))
        assert head.ok, str(head)
    finally:
        gone = s3.timed("DeleteBucket", second, lambda: client.delete_bucket(Bucket=second))
    assert gone.ok, str(gone)
    after = s3.timed("HeadBucket(deleted)", second, lambda: client.head_bucket(Bucket=second))
    assert after.error in ("404", "NoSuchBucket", "NotFound"), f"{second} still answers after DeleteBucket: {after}"
    _report(record_measurement, (listed, made, head, gone))


@pytest.mark.object_storage
@pytest.mark.writes
@pytest.mark.promise("object-storage/object/roundtrip")
def test_object_put_get_head_delete_keeps_checksum(new_bucket, record_measurement):
    """An object put with its SHA-256 MUST read back with the same bytes and size, and be gone once deleted.

    The server checks the checksum sent with the put; the bytes read back are hashed again here.
    """
    bucket = new_bucket()
    data = os.urandom(OBJECT_BYTES)
    trip = s3.object_roundtrip(bucket.client(), bucket.name, "roundtrip.bin", data)
    assert [o.op for o in trip.failed] == ["HeadObject(deleted)"], str(trip)
    assert trip.ops[-1].error in ("404", "NoSuchKey", "NotFound"), str(trip)
    assert (trip.got_sha256, trip.head_length) == (trip.sent_sha256, len(data)), str(trip)
    _report(record_measurement, trip.ops[:-1])


@pytest.mark.object_storage
@pytest.mark.writes
@pytest.mark.promise("object-storage/object/multipart")
def test_multipart_upload_reassembles_object(profile, new_bucket, record_measurement):
    """A multipart upload of the profile's size MUST complete into one object with the same bytes.

    The size is the profile's cap (components.object_storage.multipart_max_mb), in 5 MiB parts.
    """
    bucket = new_bucket()
    size = profile.components.object_storage.multipart_max_mb
    up = s3.multipart_upload(bucket.client(), bucket.name, "multipart.bin", size)
    assert all(o.ok for o in up.ops), str(up)
    assert (up.got_sha256, up.parts) == (up.sent_sha256, -(-size // s3.PART_MB)), str(up)
    record_measurement("s3 multipart upload throughput", up.upload_mb_s, "MiB/s")
    record_measurement("s3 get throughput", up.download_mb_s, "MiB/s")


@pytest.mark.object_storage
@pytest.mark.writes
@pytest.mark.promise("object-storage/bucket/list-pagination")
def test_listing_pages_through_every_object(profile, new_bucket, record_measurement):
    """Listing a bucket page by page MUST return every object exactly once, in key order."""
    bucket = new_bucket()
    count = profile.components.object_storage.objects_listed
    client = bucket.client()
    keys = [f"list/{i:04d}" for i in range(count)]
    puts = [s3.timed("PutObject", k, lambda k=k: client.put_object(Bucket=bucket.name, Key=k, Body=k.encode()))
            for k in keys]
    assert all(p.ok for p in puts), "\n".join(str(p) for p in puts if not p.ok)
    page_size = max(1, count // 4)
    listing = s3.list_all(client, bucket.name, page_size, prefix="list/")
    assert all(o.ok for o in listing.ops), "\n".join(str(o) for o in listing.ops)
    assert listing.keys == tuple(keys), f"{listing.pages} pages of {page_size}: {listing.keys}"
    assert listing.pages >= -(-count // page_size), f"{count} keys came in {listing.pages} pages of {page_size}"
    record_measurement("s3 ListObjectsV2 page latency", max(o.elapsed_ms for o in listing.ops), "ms")


@pytest.mark.object_storage
@pytest.mark.writes
@pytest.mark.promise("object-storage/access/presigned-get-from-outside")
def test_presigned_get_works_from_outside(profile, new_bucket):
    """A presigned GET URL MUST fetch the object from outside the cluster with no other credentials."""
    bucket = new_bucket()
    client = bucket.client()
    data = os.urandom(4096)
    _put(bucket, "shared.bin", data)
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket.name, "Key": "shared.bin"},
                                        ExpiresIn=PRESIGN_S)
    got = s3.fetch_from(profile.outside.origin, profile.outside.netns, url)
    assert (got.status, got.sha256) == (200, s3.sha256(data)), str(got)


@pytest.mark.object_storage
@pytest.mark.writes
@pytest.mark.promise("object-storage/access/anonymous-denied")
def test_anonymous_requests_are_denied(profile, new_bucket):
    """A caller without credentials MUST NOT list, read or write a private bucket."""
    bucket = new_bucket()
    _put(bucket, "private.bin", b"x")
    spec = profile.components.object_storage
    anonymous = s3.client(spec.s3_endpoint, "", None, spec.region)
    tries = (s3.timed("ListObjectsV2 (anonymous)", bucket.name, lambda: anonymous.list_objects_v2(Bucket=bucket.name)),
             s3.timed("GetObject (anonymous)", "private.bin", lambda: anonymous.get_object(Bucket=bucket.name, Key="private.bin")),
             s3.timed("PutObject (anonymous)", "intruder.bin", lambda: anonymous.put_object(
                 Bucket=bucket.name, Key="intruder.bin", Body=b"x")))
    assert {t.op: t.error for t in tries} == {t.op: "AccessDenied" for t in tries}, "\n".join(map(str, tries))
    plain = s3.fetch(f"{spec.s3_endpoint.rstrip('/')}/{bucket.name}/private.bin")
    assert plain.status == 403, str(plain)


@pytest.mark.object_storage
@pytest.mark.writes
@pytest.mark.promise("object-storage/bucket/removal-takes-user")
def test_deleting_provisioned_bucket_removes_it_and_its_user(new_bucket, s3_admin):
    """Removing a run's bucket MUST remove the bucket, its objects and the user that owned it.

    The same removal the cleanup stack and the sweeper make; it must leave nothing behind.
    """
    bucket = new_bucket()
    client = bucket.client()
    _put(bucket, "x", b"x")
    assert s3_admin.bucket_owner(bucket.name) == bucket.name
    s3_admin.delete(bucket.name)
    left = s3_admin.list_names(bucket.name)
    assert left == [], f"after removing {bucket.name}, radosgw still lists: {left}"
    denied = s3.timed("ListObjectsV2 (removed user)", bucket.name, lambda: client.list_objects_v2(Bucket=bucket.name))
    assert denied.error in ("InvalidAccessKeyId", "NoSuchBucket", "AccessDenied"), str(denied)
