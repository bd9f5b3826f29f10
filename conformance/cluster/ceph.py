"""Ceph on the node, from Debian's packages: the configuration and first-start steps its four
daemons share (ceph_mon, ceph_mgr, ceph_osd, ceph_rgw are the host-side services).

One monitor, one manager (its prometheus module serves the health the read-only promises read),
one OSD whose bluestore lives in a sparse file (no block device, no loop device), and radosgw
(real S3). All listen on the node's LAN address, so pods and the outside host reach them.

Authentication is off, as on a single-host test cluster; Pacific then needs the messenger in
`crc` mode for clients, or radosgw hangs on auth error -13. Each daemon's supervised command is
`python -m conformance.cluster.ceph <daemon>`: it makes what that daemon needs on its first
start (the monitor's store, the OSD's id and bluestore, the S3 admin user) and then becomes the
daemon itself, so the supervisor stops and holds the real process.

Leaves behind: nothing outside paths.STATE/ceph (stores, sparse file, credentials, logs) and
paths.RUN/ceph (sockets), which `cluster down` removes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from conformance.cluster import network as net
from conformance.cluster import paths

PACKAGES = ("ceph-mon", "ceph-mgr", "ceph-osd", "radosgw", "ceph-common")
ADDRESS = net.NODE_IPV4
MON_PORTS = {3300: "ceph-mon (msgr2)", 6789: "ceph-mon (msgr1)"}
RGW_PORT = 7480
METRICS_PORT = 9283
RGW_ENDPOINT = f"http://{ADDRESS}:{RGW_PORT}"
METRICS_URL = f"http://{ADDRESS}:{METRICS_PORT}/metrics"
REGION = "default"  # the zonegroup's api name, which S3 clients sign for

ROOT = paths.STATE / "ceph"
SOCKETS = paths.RUN / "ceph"
CONF = ROOT / "ceph.conf"
FSID_FILE = ROOT / "fsid"
ADMIN_CREDENTIALS = ROOT / "rgw-admin.json"
ADMIN_USER = "conformance-admin"  # the harness's own admin, outside every run's prefix
MON_ID, MGR_ID, OSD_ID, RGW_NAME = "a", "x", 0, "client.rgw.pcf"
OSD_BLOCK_BYTES = 20 * 1024 ** 3  # sparse: only what is written takes disk
CLI_TIMEOUT_S = 60


def _fsid() -> str:
    ROOT.mkdir(parents=True, exist_ok=True)
    if not FSID_FILE.exists():
        FSID_FILE.write_text(str(uuid.uuid4()))
    return FSID_FILE.read_text().strip()


def config() -> Path:
    """Write ceph.conf (the same for every daemon and for the command-line tools)."""
    SOCKETS.mkdir(parents=True, exist_ok=True)
    text = f"""[global]
fsid = {_fsid()}
mon host = [v2:{ADDRESS}:3300,v1:{ADDRESS}:6789]
public addr = {ADDRESS}
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
run dir = {SOCKETS}
admin socket = {SOCKETS}/$cluster-$name.$pid.asok
log file = {paths.LOGS}/ceph-$name.log
log to stderr = false
err to stderr = true
auth allow insecure global id reclaim = false
mon data avail warn = 5
mon data = {ROOT}/mon-$id
mgr data = {ROOT}/mgr-$id
osd data = {ROOT}/osd-$id
rgw data = {ROOT}/rgw
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mgr initial modules = prometheus
mon health preluminous compat warning = false

[osd]
osd objectstore = bluestore
bluestore block create = true
bluestore block size = {OSD_BLOCK_BYTES}
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 134217728

[mgr]
mgr/prometheus/server_addr = {ADDRESS}
mgr/prometheus/server_port = {METRICS_PORT}

[{RGW_NAME}]
rgw frontends = beast endpoint={ADDRESS}:{RGW_PORT}
rgw enable usage log = false
"""
    CONF.write_text(text)
    return CONF


def cli(*args: str, timeout: float = CLI_TIMEOUT_S) -> str:
    """`ceph ...` against this cluster; raises with Ceph's own words on failure."""
    return _run(["ceph", "-c", str(CONF), "--connect-timeout", "10", *args], timeout)


def quorum() -> list[str]:
    """The monitors in quorum, by name."""
    return json.loads(cli("quorum_status", "--format=json", timeout=15)).get("quorum_names", [])


def rgw_admin(*args: str, timeout: float = CLI_TIMEOUT_S) -> str:
    return _run(["radosgw-admin", "-c", str(CONF), "-n", RGW_NAME, *args], timeout)


def _run(argv: list[str], timeout: float) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    return done.stdout


def _become(argv: list[str]) -> None:
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def mon() -> None:
    """Make the monitor's store on first start, then run the monitor."""
    conf = config()
    store = ROOT / f"mon-{MON_ID}"
    if not (store / "store.db").exists():
        monmap = ROOT / "monmap"
        _run(["monmaptool", "--create", "--clobber", "--fsid", _fsid(),
              "--addv", MON_ID, f"[v2:{ADDRESS}:3300,v1:{ADDRESS}:6789]", str(monmap)], 30)
        store.mkdir(parents=True, exist_ok=True)
        _run(["ceph-mon", "-c", str(conf), "--mkfs", "-i", MON_ID, "--monmap", str(monmap)], 60)
    _become(["ceph-mon", "-f", "-c", str(conf), "-i", MON_ID])


def mgr() -> None:
    conf = config()
    (ROOT / f"mgr-{MGR_ID}").mkdir(parents=True, exist_ok=True)
    _become(["ceph-mgr", "-f", "-c", str(conf), "-i", MGR_ID])


def osd() -> None:
    """Register the OSD and make its bluestore on first start (needs the monitor), then run it."""
    conf = config()
    data = ROOT / f"osd-{OSD_ID}"
    if not (data / "whoami").exists():
        data.mkdir(parents=True, exist_ok=True)
        # One uuid for every try, so a first start cut short is taken up again, not refused.
        uuid_file = ROOT / f"osd-{OSD_ID}.uuid"
        if not uuid_file.exists():
            uuid_file.write_text(str(uuid.uuid4()))
        osd_uuid = uuid_file.read_text().strip()
        got = cli("osd", "new", osd_uuid, str(OSD_ID)).strip()
        if got != str(OSD_ID):
            raise RuntimeError(f"the monitor gave OSD id {got}, not {OSD_ID}")
        _run(["ceph-osd", "-c", str(conf), "-i", str(OSD_ID), "--mkfs", "--osd-uuid", osd_uuid], 300)
    _become(["ceph-osd", "-f", "-c", str(conf), "-i", str(OSD_ID)])


def rgw() -> None:
    """Run radosgw; its admin user is made once it serves (see ensure_admin)."""
    conf = config()
    (ROOT / "rgw").mkdir(parents=True, exist_ok=True)
    _become(["radosgw", "-f", "-c", str(conf), "-n", RGW_NAME])


def ensure_admin() -> dict:
    """The S3 admin user the profile's credentials file names: made once, keys written 0600."""
    if ADMIN_CREDENTIALS.exists():
        return json.loads(ADMIN_CREDENTIALS.read_text())
    try:
        info = json.loads(rgw_admin("user", "info", "--uid", ADMIN_USER))
    except RuntimeError:
        info = json.loads(rgw_admin("user", "create", "--uid", ADMIN_USER,
                                    "--display-name", "platform-conformance admin",
                                    "--caps", "users=*;buckets=*;metadata=*;usage=*"))
    key = info["keys"][0]
    creds = {"access_key": key["access_key"], "secret_key": key["secret_key"], "user": ADMIN_USER}
    ADMIN_CREDENTIALS.touch(mode=0o600)
    ADMIN_CREDENTIALS.write_text(json.dumps(creds))
    return creds


def supervised(name: str, daemon: str) -> dict:
    """The supervisor's entry for one daemon: this module sets it up, then becomes it."""
    return {"name": name, "log": str(paths.LOGS / f"{name}.log"),
            "argv": [sys.executable, "-m", "conformance.cluster.ceph", daemon]}


def http_ok(url: str, timeout: float = 3) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.cluster.ceph", description=__doc__)
    parser.add_argument("daemon", choices=["mon", "mgr", "osd", "rgw", "admin"])
    args = parser.parse_args(argv)
    if args.daemon == "admin":
        print(json.dumps({"user": ensure_admin()["user"], "file": str(ADMIN_CREDENTIALS)}))
        return 0
    {"mon": mon, "mgr": mgr, "osd": osd, "rgw": rgw}[args.daemon]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
