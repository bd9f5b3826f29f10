"""The outside host's web server: a real target outside the cluster that pods may reach.

The local profile names it as the world target (components.networking.world_target), so the
egress promise runs here too. It runs in the outside host's network namespace under the
supervisor, like every host-side process, and answers any GET with one line naming itself.
Pods reach it because the outside host routes the pod network through the node
(network.outside_routes), as a LAN router with native pod routing would.

    ip netns exec pcf-outside python -m conformance.cluster.outside_web --port 80
"""
from __future__ import annotations

import argparse
import socket
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conformance.cluster import network as net
from conformance.cluster import paths

NAME = "outside-web"
PORT = 80
PORTS: dict[int, str] = {}  # it listens in the outside host's namespace, not on the host's ports
READY_S = 15
ANSWER = b"pcf-outside\n"
TARGET = f"{net.OUTSIDE_IPV4}:{PORT}"  # what the local profile names


def spec() -> dict:
    """The supervisor's entry for the server, in the outside host's namespace."""
    return {"name": NAME, "log": str(paths.LOGS / f"{NAME}.log"),
            "argv": ["ip", "netns", "exec", net.OUTSIDE_NETNS, sys.executable, "-m", "conformance.cluster.outside_web",
                     f"--port={PORT}"]}


def ready(target: str = TARGET) -> bool:
    """The server answers from across the LAN, as a pod's request would reach it."""
    try:
        with urllib.request.urlopen(f"http://{target}/", timeout=3) as resp:
            return resp.read() == ANSWER
    except OSError:
        return False


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)


class _DualStack(ThreadingHTTPServer):
    """Listens on :: with IPv4 mapped in, so both of the outside host's addresses answer."""

    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.cluster.outside_web",
                                     description="Answer any GET with one line naming the outside host.")
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args(argv)
    with _DualStack(("::", args.port), _Answer) as server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
