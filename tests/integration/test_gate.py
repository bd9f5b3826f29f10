"""The upgrade gate for real on the local cluster: across a real CoreDNS upgrade (v1.14.6, built
from its Go module here, to the stack's v1.14.7) it passes when the change is declared and
nothing regressed, and it fails naming every sentinel that was changed on purpose in between
(one per installed component that holds data: a ConfigMap, a file on a PVC, an S3 object, a
Vault value synced into a Secret, an Application's revision).

The gate runs as a user runs it (`python -m conformance.gate`, the DNS suite as its checks) and
is judged by its exit code, its output and gate/verdict.json.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from kubernetes import client as k8s

from conformance import outside_s3, outside_vault, profile as profiles, stack
from conformance.cluster import build, paths, stack_images
from conformance.probes import argocd, s3, volumes
from conformance.sentinels import SENTINELS, ApplicationSentinel, VolumeSentinel
from conformance.waiting import wait_for
from host_state import reinstall_stack
from tiers import installed_profile

pytestmark = [pytest.mark.lifecycle, pytest.mark.timeout(2400)]

PREVIOUS = build.Program(name="coredns", module="github.com/coredns/coredns", version="v1.14.6",
                         sum="h1:V2g2JdCWJVqYGdX8tlBiK0iQo23Pnt8xs8gHqKyFYs8=", packages={"coredns": "."})
PREVIOUS_IMAGE = "registry.k8s.io/coredns/coredns:v1.14.6"
GATE_S = 900
CHECKS = ["--", "suites/test_dns.py", "-q", "-p", "no:cacheprovider"]


def gate(step: str, folder, profile, *extra: str) -> subprocess.CompletedProcess:
    """One gate step; while another full run on this shared cluster holds the lease, the step
    could not run (exit 2, nothing judged or written) and is tried again."""
    def attempt() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "conformance.gate", step, f"--dir={folder}",
                               f"--profile={profile}", *extra], cwd=paths.REPO, capture_output=True, text=True,
                              timeout=GATE_S)
    return wait_for(f"gate {step} to get the lease", attempt, timeout=900, interval=10, retry_on=(),
                    until=lambda done: "holds the lease" not in done.stdout + done.stderr)


def coredns_image(admin_api) -> str:
    return k8s.AppsV1Api(admin_api).read_namespaced_deployment("coredns", "kube-system").spec.template.spec.containers[0].image


def roll_coredns_to(admin_api, image: str) -> None:
    apps = k8s.AppsV1Api(admin_api)
    apps.patch_namespaced_deployment("coredns", "kube-system", {"spec": {"template": {"spec": {
        "containers": [{"name": "coredns", "image": image}]}}}})

    def rolled() -> str:
        d = apps.read_namespaced_deployment("coredns", "kube-system")
        return f"{d.status.updated_replicas}/{d.status.ready_replicas}/{d.status.replicas}/{d.spec.replicas}"
    wait_for(f"CoreDNS rolled out to {image}", rolled, until=lambda s: len(set(s.split("/"))) == 1,
             timeout="deployment_available")


def change(admin_api, profile: profiles.Profile, namespace: str, sentinel: dict) -> None:
    """Change one sentinel behind the gate's back, as a faulty upgrade would, and wait until the
    change shows where the gate looks."""
    kind = sentinel["kind"]
    if kind == "configmap":
        k8s.CoreV1Api(admin_api).patch_namespaced_config_map("pcf-sentinel", namespace, {
            "binaryData": {"payload": base64.b64encode(b"not what was written").decode()}})
    elif kind == "volume":
        wrote = volumes.write_random(admin_api, namespace, VolumeSentinel.writer, VolumeSentinel.path, 4)
        assert wrote.sha256, wrote
    elif kind == "s3-object":
        section = profile.components.object_storage
        admin = outside_s3.RgwAdmin(section.s3_endpoint, outside_s3.admin_keys(section.admin_credentials),
                                    section.region)
        keys = admin.user_keys(sentinel["bucket"])
        s3.client(section.s3_endpoint, keys.access_key, keys.secret_key, section.region).put_object(
            Bucket=sentinel["bucket"], Key="sentinel", Body=b"not what was written")
    elif kind == "vault-secret":
        kv = outside_vault.from_profile(profile)
        kv.put(sentinel["path"], {"sentinel": "not what was written"})
        wait_for("the operator to sync the changed Vault value", lambda: k8s.CoreV1Api(admin_api).read_namespaced_secret(
            "pcf-sentinel-secret", namespace).data["sentinel"], timeout="secret_synced",
            until=lambda v: base64.b64decode(v) == b"not what was written")
    elif kind == "application":
        pushed = argocd.commit(admin_api, namespace, ApplicationSentinel.git, ApplicationSentinel.repo,
                               {"app/sentinel.yaml": argocd.config_map(ApplicationSentinel.managed, {"payload": "x"})},
                               "changed behind the gate's back")
        assert pushed.ok, pushed
        argocd.refresh(admin_api, sentinel["namespace"], sentinel["name"])
        wait_for("the sentinel Application to sync the new revision",
                 lambda: argocd.application(admin_api, sentinel["namespace"], sentinel["name"]),
                 until=lambda a: a.revision == pushed.revision and a.synced_and_healthy, timeout="application_synced")
    # loadbalancer: an address cannot be moved by hand without MetalLB's help; checked for equality only


@pytest.fixture(scope="module")
def previous_coredns(admin_api):
    """CoreDNS one release back, built from its module and loaded into the node's runtime; the
    stack's own CoreDNS is put back afterwards."""
    build.build(PREVIOUS)
    archive = stack_images.build_one({"name": PREVIOUS_IMAGE, "program": "coredns/coredns",
                                      "entrypoint": ["/coredns"]}, {"coredns": PREVIOUS})
    stack_images.load_all(build.programs(), [archive])
    yield PREVIOUS_IMAGE
    reinstall_stack("core", "coredns")


def test_the_gate_passes_a_declared_coredns_upgrade_and_fails_on_a_changed_sentinel(
        tmp_path, admin_api, previous_coredns, free_lease):
    profile = installed_profile(tmp_path / "local.yaml")
    current = next(c for c in stack.documents(next(c for c in stack.components() if c.name == "coredns"))
                   if c["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    expect = tmp_path / "expected.yaml"
    expect.write_text("expected_changes: [workloads/kube-system/Deployment/coredns]\n")

    # 1. A real upgrade, declared: the gate passes and shows the version change it allowed.
    roll_coredns_to(admin_api, previous_coredns)
    first = tmp_path / "upgrade"
    done = gate("before", first, profile, *CHECKS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    record = json.loads((first / "gate.json").read_text())
    assert record["gate_id"].startswith("gate")
    claimed = profiles.load(str(profile))
    assert sorted(r["kind"] for r in record["sentinels"]) == sorted(
        k for k, s in SENTINELS.items() if s.applies(claimed)), record
    assert not any(r.get("unwritten") for r in record["sentinels"]), done.stdout[-3000:]
    roll_coredns_to(admin_api, current)
    done = gate("after", first, profile, f"--expect={expect}", *CHECKS)
    verdict = json.loads((first / "verdict.json").read_text())
    assert (done.returncode, verdict["verdict"]) == (0, "pass"), done.stdout[-4000:] + done.stderr[-2000:]
    assert (f'expected version change: workloads/kube-system/Deployment/coredns.images: '
            f'["{previous_coredns}"] -> ["{current}"]') in verdict["snapshot"]
    assert "gate verdict: pass (exit 0)" in done.stdout
    assert not (first / "gate.json").exists()
    with pytest.raises(k8s.ApiException) as gone:
        k8s.CoreV1Api(admin_api).read_namespace(record["namespace"])
    assert gone.value.status == 404
    outside_left(admin_api, claimed, record)

    # 2. The same upgrade undeclared is a regression of its own.
    roll_coredns_to(admin_api, previous_coredns)
    second = tmp_path / "undeclared"
    assert gate("before", second, profile, *CHECKS).returncode == 0
    roll_coredns_to(admin_api, current)
    # ... and every sentinel changed between before and after is named.
    record = json.loads((second / "gate.json").read_text())
    for sentinel in record["sentinels"]:
        change(admin_api, claimed, record["namespace"], sentinel)
    done = gate("after", second, profile, *CHECKS)
    verdict = json.loads((second / "verdict.json").read_text())
    assert (done.returncode, verdict["verdict"]) == (1, "fail"), done.stdout[-4000:]
    named = [r for r in verdict["regressions"] if r.startswith("sentinel: ")]
    for sentinel in record["sentinels"]:
        if sentinel["kind"] != "loadbalancer":
            assert any(r.startswith(f"sentinel: {sentinel['where']} ") for r in named), (sentinel, named)
    assert any(r.startswith("snapshot: version change: workloads/kube-system/Deployment/coredns.images")
               for r in verdict["regressions"])
    assert f"REGRESSION ConfigMap {record['namespace']}/pcf-sentinel changed" in done.stdout
    outside_left(admin_api, claimed, record)


def outside_left(admin_api, profile: profiles.Profile, record: dict) -> None:
    """The gate removed what its sentinels kept outside its namespace."""
    for sentinel in record["sentinels"]:
        if sentinel["kind"] == "s3-object":
            section = profile.components.object_storage
            admin = outside_s3.RgwAdmin(section.s3_endpoint, outside_s3.admin_keys(section.admin_credentials),
                                        section.region)
            assert sentinel["bucket"] not in admin.list_names(sentinel["bucket"]), sentinel
        elif sentinel["kind"] == "vault-secret":
            assert outside_vault.from_profile(profile).read(sentinel["path"]) is None, sentinel
        elif sentinel["kind"] == "application":
            assert argocd.application(admin_api, sentinel["namespace"], sentinel["name"]) is None, sentinel
