"""The local profile's world target is the web server the local harness runs on the outside host."""
from __future__ import annotations

import sys
import threading

from conformance import profile
from conformance.cluster import network, outside_web
from conformance.probes import outside


def test_the_local_profile_names_the_outside_web_server():
    assert profile.load("local").components.networking.world_target == outside_web.TARGET
    assert outside_web.TARGET.startswith(network.OUTSIDE_IPV4 + ":")


def test_the_harness_runs_it_in_the_outside_hosts_namespace():
    spec = outside_web.spec()
    assert spec["argv"][:5] == ["ip", "netns", "exec", network.OUTSIDE_NETNS, sys.executable]


def test_production_names_a_public_world_target():
    target = profile.load("production").components.networking.world_target
    host, _, port = target.rpartition(":")
    assert host.endswith(".ocf.berkeley.edu") and port.isdigit()


def test_the_server_answers_a_get_on_both_families():
    server = outside_web._DualStack(("::", 0), outside_web._Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        replies = [outside.get(f"http://{host}:{port}/", timeout_s=2) for host in ("127.0.0.1", "[::1]")]
    finally:
        server.shutdown()
        server.server_close()
    assert [(r.status, r.body) for r in replies] == [(200, "pcf-outside\n")] * 2, replies
