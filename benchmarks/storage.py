"""Storage on the local cluster: the storage suites' wall time, S3 latency and throughput beside
the disk's own limit, and Ceph's idle memory and CPU.

1. Runs suites/test_volumes.py, test_object_storage.py and test_ceph.py in full mode (waiting
   for the full-run lease like any run) and prints the wall time and the verdict (target: 120 s).
2. Against radosgw directly with boto3: p50/p95 of small PUT/GET/HEAD/DELETE and the throughput
   of one large PUT and GET, beside `dd` (synced) to the filesystem holding the OSD's block file,
   the physical limit these numbers sit under.
3. Ceph's added idle cost: the resident memory of ceph-mon, ceph-mgr, ceph-osd and radosgw, and
   their CPU over a quiet interval, from /proc.

It asserts nothing; numbers are read off.

    python benchmarks/storage.py [--skip-suites] [--objects 50] [--large-mb 64]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conformance import profile as profiles  # noqa: E402
from conformance.cluster import ceph, paths  # noqa: E402
from conformance.outside_s3 import from_profile  # noqa: E402
from conformance.probes import s3  # noqa: E402

SUITES = ["suites/test_volumes.py", "suites/test_object_storage.py", "suites/test_ceph.py"]
DAEMONS = ("ceph-mon", "ceph-mgr", "ceph-osd", "radosgw")
LEASE_RETRY_S, LEASE_TRIES = 10, 60


def suites() -> None:
    for _ in range(LEASE_TRIES):
        with tempfile.TemporaryDirectory() as reports:
            argv = [sys.executable, "-m", "pytest", *SUITES, "--profile=local", "--mode=full",
                    f"--kubeconfig={paths.kubeconfig('runner')}", f"--reports={reports}", "-q", "-p", "no:cacheprovider"]
            t0 = time.monotonic()
            proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1200)
            wall = time.monotonic() - t0
            if "holds the lease" in proc.stdout + proc.stderr:
                time.sleep(LEASE_RETRY_S)
                continue
            summary = json.loads((Path(reports) / "summary.json").read_text())
            print(f"storage suites: wall {wall:.1f} s (target 120 s), exit {proc.returncode}, "
                  f"verdict: {summary.get('verdict', {}).get('reason', summary.get('verdict'))}")
            for r in summary["promises"]:
                print(f"  {r['outcome']:8} {r['duration_s']:6.1f} s  {r['nodeid']}")
            return
    print("storage suites: the full-run lease stayed taken; not run")


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def s3_numbers(objects: int, large_mb: int) -> None:
    profile = profiles.load("local")
    admin = from_profile(profile)
    spec = profile.components.object_storage
    name = f"pcf-bench{os.getpid()}"  # the bench's own bucket and user, removed below
    keys = admin.create_user(name)
    try:
        client = s3.client(spec.s3_endpoint, keys.access_key, keys.secret_key, spec.region)
        t0 = time.monotonic()
        client.create_bucket(Bucket=name)
        print(f"s3 CreateBucket: {(time.monotonic() - t0) * 1000:.0f} ms")
        body = os.urandom(4096)
        times: dict[str, list[float]] = {"PutObject": [], "GetObject": [], "HeadObject": [], "DeleteObject": []}
        for i in range(objects):
            key = f"small/{i}"
            for op, call in (("PutObject", lambda: client.put_object(Bucket=name, Key=key, Body=body)),
                             ("GetObject", lambda: client.get_object(Bucket=name, Key=key)["Body"].read()),
                             ("HeadObject", lambda: client.head_object(Bucket=name, Key=key)),
                             ("DeleteObject", lambda: client.delete_object(Bucket=name, Key=key))):
                done = s3.timed(op, key, call)
                times[op].append(done.elapsed_ms)
        for op, ms in times.items():
            print(f"s3 {op} 4 KiB x{objects}: p50 {statistics.median(ms):.1f} ms, p95 {_pct(ms, 0.95):.1f} ms")
        up = s3.multipart_upload(client, name, "large.bin", large_mb, part_mb=8)
        print(f"s3 {large_mb} MiB multipart PUT: {up.upload_mb_s:.0f} MiB/s; GET: {up.download_mb_s:.0f} MiB/s")
    finally:
        admin.delete(name)
    target = ceph.ROOT / "dd-bench"
    try:
        done = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={large_mb}", "conv=fsync"],
                              capture_output=True, text=True, timeout=300)
        print(f"local dd {large_mb} MiB (conv=fsync) to {ceph.ROOT}'s disk: {done.stderr.strip().splitlines()[-1]}")
    finally:
        target.unlink(missing_ok=True)


def _pids() -> dict[str, int]:
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                comm = (proc / "comm").read_text().strip()
            except OSError:
                continue
            if comm in DAEMONS:
                found[comm] = int(proc.name)
    return found


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cost(interval_s: float) -> None:
    pids = _pids()
    if not pids:
        print("ceph idle: no Ceph daemon runs here")
        return
    rss = {n: int(next(line.split()[1] for line in Path(f"/proc/{p}/status").read_text().splitlines()
                       if line.startswith("VmRSS"))) / 1024 for n, p in pids.items()}
    before = {n: _cpu_s(p) for n, p in pids.items()}
    time.sleep(interval_s)
    cpu = {n: (_cpu_s(p) - before[n]) / interval_s * 100 for n, p in pids.items()}
    for n in pids:
        print(f"ceph idle {n}: {rss[n]:.0f} MiB resident, {cpu[n]:.1f} % of one core")
    print(f"ceph idle total: {sum(rss.values()):.0f} MiB resident, {sum(cpu.values()):.1f} % of one core "
          f"(over {interval_s:g} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-suites", action="store_true")
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--large-mb", type=int, default=64)
    parser.add_argument("--idle-s", type=float, default=20.0)
    args = parser.parse_args(argv)
    idle_cost(args.idle_s)
    s3_numbers(args.objects, args.large_mb)
    if not args.skip_suites:
        suites()
    return 0


if __name__ == "__main__":
    sys.exit(main())
