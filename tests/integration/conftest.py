"""Integration tests run against the local cluster that `nox -s tests` brought up."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubernetes import client as k8s

from conformance import manifests
from conformance.cluster import paths
from free_lease import wait_for_free_lease


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def admin_kubeconfig() -> Path:
    path = Path(os.environ.get("PCF_ADMIN_KUBECONFIG", paths.kubeconfig("admin")))
    if not path.exists():
        pytest.fail(f"no local cluster: {path} is missing; bring it up with `nox -s cluster`")
    return path


@pytest.fixture(scope="session")
def admin_api(admin_kubeconfig):
    return manifests.api_client(admin_kubeconfig)


@pytest.fixture
def admin(admin_api) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(admin_api)


@pytest.fixture
def free_lease(admin_api) -> None:
    """Wait until no other full run holds the lease: the local cluster may be shared with
    someone running the suites while these tests start."""
    wait_for_free_lease(admin_api)
