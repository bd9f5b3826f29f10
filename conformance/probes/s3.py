"""S3 operations against the profile's endpoint, each timed, with what came back.

The client is boto3 with path-style addressing and the profile's region (radosgw and most
on-premises endpoints serve buckets under the path, not as host names). Every operation returns
a frozen record of what was asked, what came back and how long it took, so a test compares
values and the summary reports latencies. A presigned URL is fetched with httpx from where the
platform's users stand: inside the outside host's network namespace on the local cluster, from
the runner elsewhere:

    ip netns exec pcf-outside python -m conformance.probes.s3 --get '<url>'
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import boto3
import httpx
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from conformance.probes import outside

CONNECT_S, READ_S = 5, 60
PART_MB = 5  # S3's smallest part but the last


def client(endpoint: str, access_key: str, secret_key: str | None, region: str) -> BaseClient:
    """A boto3 S3 client for one user (secret None: unsigned, as an anonymous caller)."""
    from botocore import UNSIGNED
    config = Config(s3={"addressing_style": "path"}, signature_version=UNSIGNED if secret_key is None else "s3v4",
                    connect_timeout=CONNECT_S, read_timeout=READ_S, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config,
                        aws_access_key_id=access_key if secret_key is not None else None,
                        aws_secret_access_key=secret_key)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Op:
    """One S3 call: its name, the error code S3 answered (None when it succeeded), its time."""

    op: str
    target: str
    error: str | None
    elapsed_ms: float
    result: object = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        return f"{self.op} {self.target}: {'ok' if self.ok else self.error} in {self.elapsed_ms:.1f} ms"


def timed(op: str, target: str, call: Callable[[], object]) -> Op:
    """Run one call; S3's answer (an error code such as AccessDenied) is evidence, not a crash."""
    t0 = time.monotonic()
    try:
        result = call()
        return Op(op, target, None, (time.monotonic() - t0) * 1000, result)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = err.get("Code") or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        return Op(op, target, code, (time.monotonic() - t0) * 1000)
    except (BotoCoreError, OSError) as exc:
        return Op(op, target, f"{type(exc).__name__}: {exc}", (time.monotonic() - t0) * 1000)


@dataclass(frozen=True)
class Roundtrip:
    """An object put, headed, got and deleted, with the checksum sent and the one read back."""

    bucket: str
    key: str
    sent_sha256: str
    got_sha256: str | None
    head_length: int | None
    ops: tuple[Op, ...]

    @property
    def failed(self) -> tuple[Op, ...]:
        return tuple(o for o in self.ops if not o.ok)

    def __str__(self) -> str:
        return "\n".join(str(o) for o in self.ops)


def object_roundtrip(s3: BaseClient, bucket: str, key: str, data: bytes) -> Roundtrip:
    """Put `data` with its SHA-256 for the server to check, then head, get and delete it."""
    digest = sha256(data)
    import base64
    b64 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    put = timed("PutObject", f"{bucket}/{key}", lambda: s3.put_object(
        Bucket=bucket, Key=key, Body=data, ChecksumSHA256=b64, Metadata={"sha256": digest}))
    head = timed("HeadObject", f"{bucket}/{key}", lambda: s3.head_object(Bucket=bucket, Key=key))
    get = timed("GetObject", f"{bucket}/{key}", lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    delete = timed("DeleteObject", f"{bucket}/{key}", lambda: s3.delete_object(Bucket=bucket, Key=key))
    after = timed("HeadObject(deleted)", f"{bucket}/{key}", lambda: s3.head_object(Bucket=bucket, Key=key))
    return Roundtrip(bucket, key, digest, sha256(get.result) if get.ok else None,
                     head.result.get("ContentLength") if head.ok else None, (put, head, get, delete, after))


@dataclass(frozen=True)
class Multipart:
    """A multipart upload: parts sent, the object's checksum both ways, and the throughput."""

    bucket: str
    key: str
    size_bytes: int
    parts: int
    sent_sha256: str
    got_sha256: str | None
    upload_s: float
    download_s: float
    ops: tuple[Op, ...]

    @property
    def upload_mb_s(self) -> float:
        return self.size_bytes / 2 ** 20 / self.upload_s if self.upload_s else 0.0

    @property
    def download_mb_s(self) -> float:
        return self.size_bytes / 2 ** 20 / self.download_s if self.download_s else 0.0

    def __str__(self) -> str:
        return (f"{self.parts} parts, {self.size_bytes} bytes: up {self.upload_mb_s:.1f} MiB/s, "
                f"down {self.download_mb_s:.1f} MiB/s\n" + "\n".join(str(o) for o in self.ops if not o.ok))


def multipart_upload(s3: BaseClient, bucket: str, key: str, size_mb: int, part_mb: int = PART_MB) -> Multipart:
    """Upload `size_mb` MiB of random bytes in parts of `part_mb`, then read the whole object back."""
    data = os.urandom(size_mb * 2 ** 20)
    part = part_mb * 2 ** 20
    ops = []
    t0 = time.monotonic()
    start = timed("CreateMultipartUpload", f"{bucket}/{key}",
                  lambda: s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
    ops.append(start)
    done = []
    if start.ok:
        for n, offset in enumerate(range(0, len(data), part), start=1):
            sent = timed(f"UploadPart {n}", f"{bucket}/{key}", lambda n=n, offset=offset: s3.upload_part(
                Bucket=bucket, Key=key, UploadId=start.result, PartNumber=n, Body=data[offset:offset + part])["ETag"])
            ops.append(sent)
            if not sent.ok:
                break
            done.append({"PartNumber": n, "ETag": sent.result})
        ops.append(timed("CompleteMultipartUpload", f"{bucket}/{key}", lambda: s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=start.result, MultipartUpload={"Parts": done})))
    upload_s = time.monotonic() - t0
    t1 = time.monotonic()
    got = timed("GetObject", f"{bucket}/{key}", lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    ops.append(got)
    return Multipart(bucket, key, len(data), len(done), sha256(data), sha256(got.result) if got.ok else None,
                     upload_s, time.monotonic() - t1, tuple(ops))


@dataclass(frozen=True)
class Listing:
    """Every key of a listing, gathered page by page."""

    bucket: str
    page_size: int
    keys: tuple[str, ...]
    pages: int
    ops: tuple[Op, ...]


def list_all(s3: BaseClient, bucket: str, page_size: int, prefix: str = "") -> Listing:
    """ListObjectsV2 with `page_size` keys per page, following continuation tokens to the end."""
    keys, ops, token = [], [], None
    while True:
        args = {"Bucket": bucket, "MaxKeys": page_size, "Prefix": prefix} | ({"ContinuationToken": token} if token else {})
        page = timed("ListObjectsV2", bucket, lambda args=args: s3.list_objects_v2(**args))
        ops.append(page)
        if not page.ok:
            break
        keys += [o["Key"] for o in page.result.get("Contents", [])]
        token = page.result.get("NextContinuationToken")
        if not page.result.get("IsTruncated") or not token:
            break
    return Listing(bucket, page_size, tuple(keys), len(ops), tuple(ops))


@dataclass(frozen=True)
class Fetch:
    """An HTTP GET of a URL (a presigned one, or an object's plain URL) from a given place."""

    url: str
    where: str
    status: int | None
    sha256: str | None
    length: int | None
    body_start: str
    error: str | None
    elapsed_ms: float

    def __str__(self) -> str:
        got = f"HTTP {self.status}, {self.length} bytes" if self.status else f"no answer ({self.error})"
        return f"GET {self.url.split('?')[0]} from {self.where}: {got} {self.body_start[:200]!r}"


def fetch(url: str, timeout_s: float = 10.0, where: str = "runner") -> Fetch:
    t0 = time.monotonic()
    try:
        resp = httpx.get(url, timeout=timeout_s)
        body = resp.content
        return Fetch(url, where, resp.status_code, sha256(body), len(body),
                     body[:300].decode(errors="replace") if resp.status_code >= 300 else "",
                     None, (time.monotonic() - t0) * 1000)
    except httpx.HTTPError as exc:
        return Fetch(url, where, None, None, None, "", f"{type(exc).__name__}: {exc}", (time.monotonic() - t0) * 1000)


def fetch_from(origin: str, netns: str | None, url: str, timeout_s: float = 10.0) -> Fetch:
    """GET `url` from the profile's outside origin: inside `netns`, or from the runner."""
    if origin == "runner":
        return fetch(url, timeout_s)
    where = f"netns {netns}"
    found, error, elapsed_ms = outside.in_netns(str(netns), "conformance.probes.s3",
                                                ["--get", url, "--timeout", str(timeout_s), "--where", where], timeout_s)
    try:
        return Fetch(**found) if found is not None else Fetch(url, where, None, None, None, "", error, elapsed_ms)
    except TypeError:
        return Fetch(url, where, None, None, None, "", f"the client in {where} printed {found!r}", elapsed_ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.probes.s3", description=__doc__)
    parser.add_argument("--get", required=True, help="the URL to fetch")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--where", default="runner")
    args = parser.parse_args(argv)
    print(json.dumps(asdict(fetch(args.get, args.timeout, args.where))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
