"""Publishing: the registry argument, where each image comes from, and a real push with skopeo.

The push goes to Debian's docker-registry on loopback, started by the test from the same
configuration the local cluster's registry service writes.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tomllib
import urllib.request

import pytest

from conformance import mirror
from conformance.cluster import components, images, paths, publish, registry
from conformance.cluster.errors import HarnessError
from conformance.probes import workloads
from conformance.waiting import wait_for

TINY = "localhost/platform-conformance/tiny:0.1"


@pytest.mark.parametrize("given, prefix", [("reg.example:5000/pcf/", "reg.example:5000/pcf"),
                                           ("192.168.77.2:5000", "192.168.77.2:5000")])
def test_a_registry_with_an_optional_path_is_taken_as_the_prefix(given, prefix):
    assert publish.check_registry(given) == prefix


@pytest.mark.parametrize("bad", ["", "https://reg.example/pcf", "Reg.Example/PCF", "reg example"])
def test_a_bad_registry_is_named_with_the_fix(bad):
    with pytest.raises(HarnessError) as caught:
        publish.check_registry(bad)
    assert repr(bad) in caught.value.problem and "HOST[:PORT][/PREFIX]" in caught.value.fix


def test_images_the_harness_builds_come_from_its_stack_list_entries():
    assert publish._stack_entry(workloads.PROBE_IMAGE)["build"] == "probe"
    assert publish._stack_entry(workloads.ECHO_IMAGE)["build"] == "e2e-agnhost"
    assert publish._stack_entry("quay.io/someone/else:1") is None
    assert publish.source("quay.io/someone/else:1") == "docker://quay.io/someone/else:1"


def test_the_runtime_pulls_from_the_registry_over_plain_http(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE", tmp_path / "state")
    monkeypatch.setattr(paths, "REGISTRY_HOSTS", tmp_path / "state" / "containerd-hosts")
    conf = tomllib.loads(components.containerd_config(None).read_text())
    hosts_dir = conf["plugins"]["io.containerd.cri.v1.images"]["registry"]["config_path"]
    assert hosts_dir == str(paths.REGISTRY_HOSTS)
    entry = tomllib.loads(registry.runtime_hosts().read_text())
    assert registry.runtime_hosts().parent.parent == paths.REGISTRY_HOSTS
    assert registry.runtime_hosts().parent.name == registry.ADDRESS
    assert entry["server"] == f"http://{registry.ADDRESS}"
    assert entry["host"][f"http://{registry.ADDRESS}"]["capabilities"] == ["pull", "resolve"]


def test_the_registry_is_a_supervised_host_service_with_its_port_checked():
    assert registry in components.SERVICES
    assert components.PORTS[registry.PORT] == "image registry"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def loopback_registry(tmp_path):
    for tool in ("skopeo", registry.BINARY):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (python -m conformance.cluster packages --test-tools)")
    address = f"127.0.0.1:{_free_port()}"
    argv = registry.config(tmp_path / "registry.yml", address, tmp_path / "storage")
    with open(tmp_path / "registry.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(f"the registry on {address}", lambda: registry.ready(address), timeout=30, interval=0.2)
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


def test_publish_pushes_each_image_under_its_mirrored_name(tmp_path, monkeypatch, loopback_registry):
    archive = tmp_path / "tiny.tar"
    digest = images.write_oci_archive(images.ImageSpec(
        TINY, {"/hello": images.Data(b"hi\n")}, images.ImageConfig(cmd=("/hello",))), archive)
    monkeypatch.setattr(mirror, "workload_images", lambda: (TINY,))
    monkeypatch.setattr(publish, "source", lambda upstream, log: f"oci-archive:{archive}:{upstream}")
    lines: list[str] = []
    done = publish.publish(f"{loopback_registry}/mirror", tls_verify=False, log=lines.append)
    pushed = f"{loopback_registry}/mirror/{TINY}"
    assert [(p.upstream, p.pushed, p.digest) for p in done] == [(TINY, pushed, digest)]
    assert lines[0] == f"[1/1] {TINY} -> {pushed}"
    assert lines[1].startswith(f"[1/1] pushed {pushed}@{digest} in ")
    assert "mirror/localhost/platform-conformance/tiny" in registry.catalog(loopback_registry)
    request = urllib.request.Request(f"http://{loopback_registry}/v2/mirror/localhost/platform-conformance/tiny/manifests/0.1",
                                     headers={"Accept": images.MEDIA_MANIFEST})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.headers["Docker-Content-Digest"] == digest
        assert json.loads(resp.read())["config"]["mediaType"] == images.MEDIA_CONFIG


def test_a_refused_push_names_the_image_and_the_fix(tmp_path, monkeypatch, loopback_registry):
    archive = tmp_path / "tiny.tar"
    images.write_oci_archive(images.ImageSpec(TINY, {"/x": images.Data(b"x")}, images.ImageConfig()), archive)
    monkeypatch.setattr(mirror, "workload_images", lambda: (TINY,))
    monkeypatch.setattr(publish, "source", lambda upstream, log: f"oci-archive:{archive}:{upstream}")
    with pytest.raises(HarnessError) as caught:  # TLS verification on, against a plain-HTTP registry
        publish.publish(f"{loopback_registry}/mirror", log=lambda line: None)
    assert f"pushing {loopback_registry}/mirror/{TINY}" in caught.value.problem
    assert "--dest-tls-verify=false" in caught.value.fix
