"""networking/egress/world runs on the local cluster: pods reach the outside host's web server.

A cluster brought up before the outside host had its web server and its route to the pod
network gets both for the test's duration (the harness's own code starts them) and loses them
again afterwards; a cluster that has them is left alone. A target where nothing listens must fail.
"""
from __future__ import annotations

import subprocess

import pytest

from conformance.cluster import network, outside_web
from conformance.probes import outside
from conformance.waiting import wait_for
from tests.integration.core_runs import run_suites

START_LIMIT_S = 10


def _answers() -> bool:
    return outside.get(f"http://{outside_web.TARGET}/", timeout_s=2).answered


@pytest.fixture
def world_target():
    """The outside host's web server and pod route, as `nox -s cluster` now sets them up."""
    routed = network.sh("ip", "route", "show", network.POD_CIDRS[0], netns=network.OUTSIDE_NETNS).stdout.strip()
    added = [] if routed else network.outside_routes()
    server = None
    if not _answers():
        server = subprocess.Popen(outside_web.spec()["argv"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(f"the outside web server (pid {server.pid}) to answer at {outside_web.TARGET}", _answers,
                 timeout=START_LIMIT_S, interval=0.2)
    yield outside_web.TARGET
    if server is not None:
        server.terminate()
        server.wait(START_LIMIT_S)
    for route in added:
        network.sh("ip", "route", "del", *route.split(), netns=network.OUTSIDE_NETNS, check=False)


@pytest.mark.usefixtures("free_lease")
def test_pods_reach_the_local_world_target(tmp_path, world_target):
    run = run_suites(["suites/test_networking.py"], tmp_path / "reports", keyword="world_target")
    assert run.outcomes("networking/egress/world") == {"passed"}, run.output


@pytest.mark.usefixtures("free_lease")
def test_a_world_target_that_does_not_answer_fails(tmp_path, world_target):
    host = world_target.rpartition(":")[0]
    run = run_suites(["suites/test_networking.py"], tmp_path / "reports", keyword="world_target",
                     extra=("--set", f"components.networking.world_target={host}:81"))
    assert run.outcomes("networking/egress/world") == {"failed"}, run.output

