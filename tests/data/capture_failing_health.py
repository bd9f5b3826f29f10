"""Capture real failing /readyz and /livez lines from a private, throw-away API server.

    .venv/bin/python tests/data/capture_failing_health.py --bin-dir <dir with kube-apiserver> --etcd <etcd binary>

A healthy cluster shows no failing check, and the shared local cluster must not be broken for
a capture. So this starts an etcd and a kube-apiserver of its own (loopback ports 23791, 23801
and 16443, a temporary directory, one static token of its own), records /readyz?verbose while the
server starts (post-start hooks not finished yet), then stops its etcd and records /readyz and
/livez once the etcd check fails. Everything it started is stopped and removed at the end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import capture  # tests/data/capture.py, beside this script

DATA = Path(__file__).resolve().parent
API = "https://127.0.0.1:16443"
ETCD = "http://127.0.0.1:23791"
LIMIT_S = 120
TOKEN = "pcf-health-capture"


def get(path: str) -> tuple[int | None, str]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the server's own self-signed certificate
    try:
        request = urllib.request.Request(API + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, context=ctx, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None, ""


def poll(path: str, until) -> tuple[int, str]:
    """GET `path` until `until(status, body)` holds; the loop is bounded by LIMIT_S."""
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline:
        status, body = get(path)
        if status is not None and until(status, body):
            return status, body
        time.sleep(0.05)
    raise SystemExit(f"{path} never showed what was awaited within {LIMIT_S} s")


def save(case: str, status: int, body: str, command: str) -> None:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = DATA / "health" / f"{case}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"captured": when, "command": command, "status": status, "body": body}, indent=1) + "\n")
    print(f"health/{case}.json: HTTP {status}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", required=True, type=Path)
    parser.add_argument("--etcd", required=True, type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pcf-health-"))
    key = ec.generate_private_key(ec.SECP256R1())
    (work / "sa.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    (work / "sa.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    (work / "tokens.csv").write_text(f"{TOKEN},health,health\n")
    etcd = subprocess.Popen([str(args.etcd), "--name=health", f"--data-dir={work / 'etcd'}",
                             f"--listen-client-urls={ETCD}", f"--advertise-client-urls={ETCD}",
                             "--listen-peer-urls=http://127.0.0.1:23801", "--listen-metrics-urls=",
                             "--initial-advertise-peer-urls=http://127.0.0.1:23801",
                             "--initial-cluster=health=http://127.0.0.1:23801", "--log-level=error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    apiserver = subprocess.Popen([str(args.bin_dir / "kube-apiserver"), f"--etcd-servers={ETCD}",
                                  "--bind-address=127.0.0.1", "--secure-port=16443", f"--cert-dir={work / 'certs'}",
                                  "--service-cluster-ip-range=10.250.0.0/24", "--service-account-issuer=https://health",
                                  f"--service-account-key-file={work / 'sa.pub'}",
                                  f"--service-account-signing-key-file={work / 'sa.key'}",
                                  f"--token-auth-file={work / 'tokens.csv'}", "--authorization-mode=AlwaysAllow", "--v=0"],
                                 stdout=subprocess.DEVNULL, stderr=open(work / "apiserver.log", "w"))
    version = subprocess.run([str(args.bin_dir / "kube-apiserver"), "--version"], capture_output=True,
                             text=True).stdout.strip()
    try:
        status, body = poll("/readyz?verbose", lambda s, b: s != 200 and "[-]" in b)
        save("readyz-verbose-starting", status, body,
             f"GET /readyz?verbose of a private {version} while it starts (tests/data/capture_failing_health.py)")
        poll("/readyz?verbose", lambda s, b: s == 200)
        etcd.terminate()
        etcd.wait(30)
        for endpoint in ("/readyz", "/livez"):
            status, body = poll(f"{endpoint}?verbose", lambda s, b: "[-]etcd" in b)
            save(f"{endpoint.strip('/')}-verbose-etcd-down", status, body,
                 f"GET {endpoint}?verbose of a private {version} after its etcd was stopped "
                 "(tests/data/capture_failing_health.py)")
    finally:
        for proc in (apiserver, etcd):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:  # an API server without its etcd may not stop on TERM
                    proc.kill()
                    proc.wait(30)
        if sys.exc_info()[0] is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work} (apiserver.log)")
    capture.index()
    return 0


if __name__ == "__main__":
    sys.exit(main())
