"""Outside-in traffic: an HTTP GET from where the platform's users stand, with the evidence.

On the local cluster "outside" is a network namespace on the LAN (the profile's `outside.netns`),
so the client runs as `ip netns exec <netns> python -m conformance.probes.outside --url ...` and
prints one JSON line; in production it is the runner itself. Either way the caller gets the same
OutsideReply, which names where it ran from.

    python -m conformance.probes.outside --url http://192.168.77.2:30080/hostname --timeout 3
"""
from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

NETNS_MARGIN_S = 5  # python start-up inside the namespace, on top of the request's own limit


@dataclass(frozen=True)
class OutsideReply:
    url: str
    where: str  # "netns pcf-outside" or "runner"
    status: int | None
    body: str
    error: str | None
    elapsed_ms: float

    @property
    def answered(self) -> bool:
        return self.status is not None

    def __str__(self) -> str:
        got = f"HTTP {self.status} {self.body.strip()[:80]!r}" if self.answered else f"no answer ({self.error})"
        return f"GET {self.url} from {self.where}: {got}"


def get(url: str, timeout_s: float = 3.0, where: str = "runner") -> OutsideReply:
    """GET `url` from this process (plain HTTP; the body is kept up to 64 KiB)."""
    parts = urlsplit(url)
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)
    try:
        conn.request("GET", parts.path or "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(65536).decode(errors="replace")
        return OutsideReply(url, where, resp.status, body, None, (time.monotonic() - t0) * 1000)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
        return OutsideReply(url, where, None, "", error, (time.monotonic() - t0) * 1000)
    finally:
        conn.close()


def in_netns(netns: str, module: str, args: list[str], timeout_s: float) -> tuple[dict | None, str | None, float]:
    """Run `python -m <module> <args>` inside `netns`: the JSON of its last output line, or why
    there is none, and the milliseconds it took."""
    where = f"netns {netns}"
    argv = ["ip", "netns", "exec", str(netns), sys.executable, "-m", module, *args]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + NETNS_MARGIN_S)
    except subprocess.TimeoutExpired:
        return None, (f"the client in {where} did not finish within {timeout_s + NETNS_MARGIN_S:g} s"), \
            (time.monotonic() - t0) * 1000
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), None, (time.monotonic() - t0) * 1000
    except (IndexError, ValueError):
        return None, (f"the client in {where} failed (exit {proc.returncode}): "
                      f"{(proc.stderr or proc.stdout).strip()[-300:]}"), (time.monotonic() - t0) * 1000


def get_from(origin: str, netns: str | None, url: str, timeout_s: float = 3.0) -> OutsideReply:
    """GET `url` from the profile's outside origin: inside `netns`, or from the runner."""
    if origin == "runner":
        return get(url, timeout_s)
    where = f"netns {netns}"
    found, error, elapsed_ms = in_netns(str(netns), "conformance.probes.outside",
                                        ["--url", url, "--timeout", str(timeout_s), "--where", where], timeout_s)
    try:
        return OutsideReply(**found) if found is not None else OutsideReply(url, where, None, "", error, elapsed_ms)
    except TypeError:
        return OutsideReply(url, where, None, "", f"the client in {where} printed {found!r}", elapsed_ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.probes.outside",
                                     description="GET a URL and print the evidence as one JSON line.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--where", default="runner", help="how to name this vantage point in the evidence")
    args = parser.parse_args(argv)
    print(json.dumps(asdict(get(args.url, args.timeout, args.where))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
