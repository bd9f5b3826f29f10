"""Every image the suite's workloads pull is listed, with the name a profile's mirror gives it."""
from __future__ import annotations

import re
import subprocess
import sys

from conformance import mirror
from conformance.cluster import paths
from conformance.probes import workloads
from conformance.profile import Images


def test_the_list_holds_every_image_the_probe_manifests_name():
    listed = mirror.workload_images()
    assert workloads.PROBE_IMAGE in listed and workloads.ECHO_IMAGE in listed
    # Each `image:` line of each manifest, as the manifests spell it, is covered.
    for path in workloads.MANIFESTS.glob("*.yaml"):
        for placeholder in re.findall(r"image:\s*\$\{(\w+)\}", path.read_text()):
            assert getattr(workloads, placeholder) in listed, (path.name, placeholder)


def test_images_nested_in_templates_and_init_containers_are_found():
    doc = {"kind": "DaemonSet", "spec": {"template": {"spec": {
        "initContainers": [{"name": "a", "image": "example.org/a:1"}],
        "containers": [{"name": "b", "image": "example.org/b:2"}]}}}}
    assert mirror._images_in([doc, {"kind": "Service"}]) == {"example.org/a:1", "example.org/b:2"}


def test_the_mirror_prefix_goes_before_each_upstream_name():
    pairs = {m.upstream: m.pulled for m in mirror.mirrored(Images(registry_prefix="reg.example:5000/m/"))}
    assert pairs[workloads.PROBE_IMAGE] == f"reg.example:5000/m/{workloads.PROBE_IMAGE}"
    assert pairs[workloads.ECHO_IMAGE] == f"reg.example:5000/m/{workloads.ECHO_IMAGE}"


def test_the_referees_images_are_published_and_listed_only_where_the_profile_lets_it_run():
    images = Images(registry_prefix="reg.example/m")
    plain = {m.upstream for m in mirror.mirrored(images)}
    with_referee = {m.upstream: m.pulled for m in mirror.mirrored(images, referee=True)}
    extra = set(with_referee) - plain
    assert "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0" in extra, extra
    assert extra == set(mirror.referee_images()) - plain
    assert with_referee["registry.k8s.io/pause:3.10.2"] == "reg.example/m/registry.k8s.io/pause:3.10.2"
    listed = [line.split("\t")[0] for line in mirror.listing("local", images, referee=True).splitlines()
              if "\t" in line and not line.startswith("#")]
    assert sorted(listed) == sorted(with_referee) and len(listed) == len(set(listed))
    local = subprocess.run([sys.executable, "-m", "conformance.cluster", "publish", "--list-images",
                            "--registry=reg.example/m"], cwd=paths.REPO, capture_output=True, text=True, timeout=60)
    production = subprocess.run([sys.executable, "-m", "conformance.cluster", "publish", "--list-images",
                                 "--profile=production", "--registry=reg.example/m"], cwd=paths.REPO,
                                capture_output=True, text=True, timeout=60)
    assert "glibc-dns-testing" in local.stdout and "glibc-dns-testing" not in production.stdout, \
        local.stdout + local.stderr + production.stderr


def test_without_a_prefix_the_listing_says_the_probe_image_needs_publishing():
    text = mirror.listing("production", Images())
    assert f"{workloads.PROBE_IMAGE}\t{workloads.PROBE_IMAGE}" in text
    assert "no registry serves localhost/platform-conformance/git:0.1.0, localhost/platform-conformance/probe" in text
    assert "publish-images" in text
    assert "no registry serves" not in mirror.listing("x", Images(registry_prefix="reg.example/m"))


def list_images(*args: str) -> subprocess.CompletedProcess:
    # No kubeconfig and a profile whose cluster is unreachable: the option never connects.
    return subprocess.run([sys.executable, "-m", "pytest", "suites", "--list-images", "-p", "no:cacheprovider", *args],
                          cwd=paths.REPO, capture_output=True, text=True, timeout=120, check=False)


def test_list_images_prints_the_table_for_the_profile_and_stops():
    run = list_images("--profile=production", "--set", "images.registry_prefix=mirror.example.org/pcf",
                      "--kubeconfig=/nonexistent")
    assert run.returncode == 0, run.stderr
    assert f"{workloads.PROBE_IMAGE}\tmirror.example.org/pcf/{workloads.PROBE_IMAGE}" in run.stdout
    assert f"{workloads.ECHO_IMAGE}\tmirror.example.org/pcf/{workloads.ECHO_IMAGE}" in run.stdout
    assert "collected" not in run.stdout  # no session, no collection


def test_list_images_names_a_bad_profile_without_a_traceback():
    run = list_images("--profile=no-such-profile")
    assert run.returncode == 2
    assert "no-such-profile" in run.stderr and "Fix:" in run.stderr and "Traceback" not in run.stderr
