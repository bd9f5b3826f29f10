"""Persistent volumes as a pod sees them: claims, what they bind to, and the bytes on them.

The claim and the pod that mounts it come from manifests/probes/volume-*.yaml. Everything a
pod does with its volume is a busybox command run through exec (dd, sha256sum, df), so the
same probe image serves every class; each call returns a frozen record of what was run and
what it printed. A claim that does not bind is described with its events, which name the
provisioner that was asked (a stopped provisioner, a class naming a missing pool).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from kubernetes import client as k8s

from conformance.pods import ExecResult, exec_in
from conformance.probes import workloads
from conformance.profile import Images
from conformance.waiting import wait_for

BUSYBOX = "/bin/busybox"
REQUEST_TIMEOUT = (5, 30)
DD_TIMEOUT_S = 120
# busybox `time` prints "real\t0m 0.51s" (10 ms resolution); its dd prints no rate of its own.
_TIME = re.compile(r"real\s+(?P<minutes>\d+)m\s*(?P<seconds>[\d.]+)s")
_RECORDS = re.compile(r"^(?P<full>\d+)\+\d+ records out", re.M)


@dataclass(frozen=True)
class ClaimState:
    """A claim's phase, its volume and capacity, and the events that explain it."""

    namespace: str
    name: str
    storage_class: str | None
    phase: str | None
    volume: str | None
    capacity: str | None
    events: tuple[str, ...]

    def __str__(self) -> str:
        events = "\n  ".join(self.events) or "(no events)"
        return (f"PVC {self.namespace}/{self.name} ({self.storage_class}): {self.phase}, volume {self.volume}, "
                f"capacity {self.capacity}\n  {events}")


def claim_state(api: k8s.ApiClient, namespace: str, name: str) -> ClaimState:
    core = k8s.CoreV1Api(api)
    pvc = core.read_namespaced_persistent_volume_claim(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}",
                                        _request_timeout=REQUEST_TIMEOUT).items
    return ClaimState(namespace, name, pvc.spec.storage_class_name, pvc.status.phase, pvc.spec.volume_name,
                      (pvc.status.capacity or {}).get("storage"),
                      tuple(f"{e.type} {e.reason}: {e.message} (x{e.count or 1}, from {e.source.component if e.source else '?'})"
                            for e in sorted(events, key=lambda e: str(e.last_timestamp or e.event_time or ""))))


def create_claim(api: k8s.ApiClient, namespace: str, name: str, storage_class: str, size: str,
                 access_mode: str = "ReadWriteOnce", images: Images | None = None) -> None:
    workloads.apply(api, namespace, "volume-claim", images, NAME=name, STORAGE_CLASS=storage_class,
                    ACCESS_MODE=access_mode, SIZE=size)


def create_pod(api: k8s.ApiClient, namespace: str, name: str, claim: str, images: Images | None = None) -> None:
    workloads.apply(api, namespace, "volume-pod", images, NAME=name, CLAIM=claim)


@dataclass(frozen=True)
class Bound:
    """How long a claim took to bind, measured from `since` (the create of its first user)."""

    state: ClaimState
    seconds: float


def wait_bound(api: k8s.ApiClient, namespace: str, name: str, since: float, limit: str | float) -> Bound:
    """Wait until the claim is Bound; the limit is a named timeout or a budget in seconds."""
    final = wait_for(f"PVC {namespace}/{name} to be Bound", lambda: claim_state(api, namespace, name),
                     until=lambda s: s.phase == "Bound", timeout=limit, interval=0.25)
    return Bound(final, time.monotonic() - since)


def run(api: k8s.ApiClient, namespace: str, pod: str, script: str, timeout_s: float = DD_TIMEOUT_S) -> ExecResult:
    """One busybox shell script in the pod."""
    return exec_in(api, namespace, pod, [BUSYBOX, "sh", "-c", script], timeout_s=timeout_s)


@dataclass(frozen=True)
class FileDigest:
    """A file's SHA-256 and size as one pod sees them."""

    where: str
    path: str
    sha256: str | None
    size: int | None
    raw: ExecResult

    def __str__(self) -> str:
        return (f"{self.path} in {self.where}: sha256 {self.sha256}, {self.size} bytes"
                + ("" if self.raw.exit_code == 0 else f" (exit {self.raw.exit_code}: {self.raw.stderr.strip()[-300:]})"))


def _digest(result: ExecResult, path: str) -> FileDigest:
    sha, size = None, None
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == path and len(parts[0]) == 64:
            sha = parts[0]
        elif len(parts) == 1 and parts[0].isdigit():
            size = int(parts[0])
    return FileDigest(result.where, path, sha, size, result)


def write_random(api: k8s.ApiClient, namespace: str, pod: str, path: str, kib: int) -> FileDigest:
    """Write `kib` KiB of random bytes to `path`, synced to the volume, and hash them."""
    bb = BUSYBOX
    return _digest(run(api, namespace, pod, f"{bb} dd if=/dev/urandom of={path} bs=1024 count={kib} conv=fsync 2>/dev/null"
                                            f" && {bb} sync && {bb} sha256sum {path} && {bb} stat -c %s {path}"), path)


def digest(api: k8s.ApiClient, namespace: str, pod: str, path: str) -> FileDigest:
    bb = BUSYBOX
    return _digest(run(api, namespace, pod, f"{bb} sha256sum {path} && {bb} stat -c %s {path}"), path)


@dataclass(frozen=True)
class Throughput:
    """Sequential write (synced) and read of one file with dd, as dd measured them."""

    where: str
    size_mib: int
    write_mib_s: float | None
    read_mib_s: float | None
    raw: tuple[ExecResult, ...]

    def __str__(self) -> str:
        return (f"{self.size_mib} MiB in {self.where}: write {self.write_mib_s} MiB/s, read {self.read_mib_s} MiB/s\n"
                + "\n".join(f"{' '.join(r.argv[-1:])}: exit {r.exit_code} {r.stderr.strip()[-300:]}" for r in self.raw))


def _rate(result: ExecResult, block_mib: float = 1.0) -> float | None:
    """MiB/s of one `time dd ... bs=1M`: whole blocks copied over the real time (at least the
    10 ms `time` can tell)."""
    text = result.stderr + result.stdout
    took, records = _TIME.search(text), _RECORDS.search(text)
    if result.exit_code != 0 or not took or not records:
        return None
    seconds = max(int(took["minutes"]) * 60 + float(took["seconds"]), 0.01)
    return int(records["full"]) * block_mib / seconds


def throughput(api: k8s.ApiClient, namespace: str, pod: str, size_mib: int, path: str = "/data/throughput") -> Throughput:
    """dd `size_mib` MiB of zeros to `path` with an fsync, then read it back bypassing the page
    cache (O_DIRECT where the filesystem allows it), then remove it."""
    bb = BUSYBOX
    wrote = run(api, namespace, pod, f"{bb} time {bb} dd if=/dev/zero of={path} bs=1M count={size_mib} conv=fsync")
    read = run(api, namespace, pod, f"{bb} time {bb} dd if={path} of=/dev/null bs=1M iflag=direct 2>&1 || "
                                    f"{bb} time {bb} dd if={path} of=/dev/null bs=1M")
    run(api, namespace, pod, f"{bb} rm -f {path}")
    return Throughput(wrote.where, size_mib, _rate(wrote), _rate(read), (wrote, read))


@dataclass(frozen=True)
class FilesystemSize:
    where: str
    path: str
    size_bytes: int | None
    raw: ExecResult

    def __str__(self) -> str:
        return f"filesystem at {self.path} in {self.where}: {self.size_bytes} bytes ({self.raw.stdout.strip()!r})"


def filesystem_size(api: k8s.ApiClient, namespace: str, pod: str, path: str = "/data") -> FilesystemSize:
    """The size of the filesystem mounted at `path`, as df inside the pod reports it."""
    result = run(api, namespace, pod, f"{BUSYBOX} df -k {path}")
    lines = result.stdout.strip().splitlines()
    size = None
    if len(lines) >= 2:
        fields = " ".join(lines[1:]).split()
        size = int(fields[1]) * 1024 if len(fields) > 1 and fields[1].isdigit() else None
    return FilesystemSize(result.where, path, size, result)
