"""Facts and clean-up about the host: packages, free disk, listening ports, mounts, cgroups."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from conformance.cluster.errors import HarnessError

# Debian packages the cluster needs: command -> package providing it.
PACKAGES = {
    "runc": "runc",
    "iptables": "iptables",
    "ipset": "ipset",
    "nft": "nftables",
    "conntrack": "conntrack",
    "socat": "socat",
    "dnsmasq": "dnsmasq-base",
    "gcc": "gcc",
    "musl-gcc": "musl-tools",
    "dig": "bind9-dnsutils",
    "busybox": "busybox-static",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    # The local image registry (registry.py).
    "docker-registry": "docker-registry",
}
# Only the project's own tests need these: a browser for the report page, and two independent
# readers of the OCI archives the harness writes.
TEST_PACKAGES = {"chromium": "chromium", "umoci": "umoci", "skopeo": "skopeo"}
MIN_FREE_GIB = 12
APT_TIMEOUT_S = 900


def missing_packages(wanted: dict[str, str] = PACKAGES) -> list[str]:
    return sorted({pkg for cmd, pkg in wanted.items()
                   if not (Path(cmd).exists() if cmd.startswith("/") else
                           shutil.which(cmd) or (cmd == pkg and _dpkg_installed(pkg)))})


def _dpkg_installed(package: str) -> bool:
    return Path(f"/var/lib/dpkg/info/{package}.list").exists() or \
        Path(f"/var/lib/dpkg/info/{package}:amd64.list").exists()


def ensure_packages(log=print, test_tools: bool = False, extra: dict[str, str] | None = None) -> None:
    """Install the Debian packages the cluster (and, if asked, the project's tests) need, plus
    `extra` (command or file -> package; a bare package name stands for a command of that name
    or, failing that, the package's own dpkg record).

    No daemon starts: there is no systemd, and the harness starts what it needs itself."""
    missing = missing_packages({**PACKAGES, **(TEST_PACKAGES if test_tools else {}), **(extra or {})})
    if not missing:
        return
    if shutil.which("go") is None:
        raise HarnessError("Go is not installed", fix="install Go 1.26 (the machine image has it)")
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            raise HarnessError(f"`{' '.join(argv)}` failed:\n{proc.stderr[-2000:]}",
                               fix="check that Debian's package mirror is reachable")


def check_disk(*dirs: Path) -> None:
    for d in dirs:
        probe = d
        while not probe.exists():
            probe = probe.parent
        free = shutil.disk_usage(probe).free / 2**30
        if free < MIN_FREE_GIB:
            raise HarnessError(f"only {free:.1f} GiB free under {d}; the cluster needs {MIN_FREE_GIB} GiB",
                               fix=f"free space on the filesystem of {probe}, or point PCF_CACHE/PCF_STATE elsewhere")


def listeners() -> dict[int, str]:
    """TCP ports listened on, with the owning process's name where known."""
    proc = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=10, check=False)
    out: dict[int, str] = {}
    for line in proc.stdout.splitlines():
        cols = line.split()
        if len(cols) < 4:
            continue
        port = int(cols[3].rsplit(":", 1)[1])
        m = re.search(r'\("([^"]+)",pid=(\d+)', line)
        out[port] = f"{m.group(1)} (pid {m.group(2)})" if m else "an unknown process"
    return out


def check_ports(ports: dict[int, str]) -> None:
    busy = listeners()
    taken = [f"port {p} ({what}) is taken by {busy[p]}" for p, what in ports.items() if p in busy]
    if taken:
        raise HarnessError("; ".join(taken),
                           fix="stop that process, or run `nox -s cluster-down` if it is an earlier cluster")


def proc_stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter (R, S, Z, ...) and parent pid; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def parents() -> dict[int, int]:
    """Every live process mapped to its parent pid."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := proc_stat(int(entry.name))) is not None:
            out[int(entry.name)] = found[1]
    return out


def pids_using(prefixes: tuple[Path, ...], marker: Path | None = None) -> list[int]:
    """Processes run from one of these folders, or whose command line names `marker`, and
    every process in a pod cgroup."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            exe = os.readlink(entry / "exe")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue
        if (any(exe.startswith(str(p)) for p in prefixes) or "/kubepods" in cgroup
                or (marker is not None and str(marker) in cmdline)):
            out.append(int(entry.name))
    return out


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def mounts_under(prefixes: tuple[Path, ...]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(p) or point.startswith(f"{p}/") for p in prefixes):
            points.append(point)
    return points


def unmount_all(prefixes: tuple[Path, ...]) -> None:
    # Deepest first, lazily if busy, until nothing under the prefixes is mounted.
    for _ in range(5):
        points = mounts_under(prefixes)
        if not points:
            return
        for point in sorted(points, key=lambda p: -p.count("/")):
            if subprocess.run(["umount", point], capture_output=True, timeout=20, check=False).returncode:
                subprocess.run(["umount", "-l", point], capture_output=True, timeout=20, check=False)


def cgroup_dirs() -> list[Path]:
    """The pod cgroups the kubelet created, in every controller hierarchy, deepest first."""
    found = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for top in hierarchy.glob("kubepods*") if hierarchy.is_dir() else ():
            found += [p for p in top.rglob("*") if p.is_dir()] + [top]
    if Path("/sys/fs/cgroup/kubepods").is_dir():
        found.append(Path("/sys/fs/cgroup/kubepods"))
    return sorted(set(found), key=lambda p: -len(p.parts))


def remove_cgroups() -> None:
    for d in cgroup_dirs():
        try:
            d.rmdir()
        except OSError:
            pass
