"""Redaction everywhere, secret digests, and the shape of a diagnosis."""
from __future__ import annotations

import base64

from kubernetes import client as k8s

from conformance import evidence
from conformance.evidence import REDACTED, Diagnosis, Section

PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB0s3cr3t\n-----END EC PRIVATE KEY-----"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_secret_values_go_and_keys_stay():
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "app-tls", "managedFields": [{"manager": "x"}], "annotations": {
                  "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"tls.key":"c2VjcmV0"}}',
                  "cert-manager.io/issuer-name": "letsencrypt"}},
              "data": {"tls.crt": "Y2VydA==", "tls.key": "c2VjcmV0"}, "stringData": {"password": "hunter2"}}
    out = evidence.redact(secret)
    assert out["data"] == {"tls.crt": REDACTED, "tls.key": REDACTED}
    assert out["stringData"] == {"password": REDACTED}
    assert out["metadata"]["annotations"] == {"cert-manager.io/issuer-name": "letsencrypt"}
    assert "managedFields" not in out["metadata"]
    assert "c2VjcmV0" not in repr(out) and "hunter2" not in repr(out)
    assert secret["data"]["tls.key"] == "c2VjcmV0"  # the input is not modified


def test_secret_looking_keys_anywhere():
    obj = {"spec": {"vault": {"token": "hvs.abc", "role": "reader"}, "adminPassword": "p4ss",
                    "auth": {"clientSecret": "s", "secretName": "keep-me", "secretKeyRef": {"name": "ref"}},
                    "tls.key": "k", "ssh-key": "k", "key": "app.kubernetes.io/name", "keys": ["username"]}}
    out = evidence.redact(obj)["spec"]
    assert out["vault"] == {"token": REDACTED, "role": "reader"}
    assert out["adminPassword"] == REDACTED and out["auth"]["clientSecret"] == REDACTED
    assert out["auth"]["secretName"] == "keep-me" and out["auth"]["secretKeyRef"] == {"name": "ref"}
    assert out["tls.key"] == REDACTED and out["ssh-key"] == REDACTED
    assert out["key"] == "app.kubernetes.io/name" and out["keys"] == ["username"]


def test_environment_variables_named_like_secrets():
    env = [{"name": "DB_PASSWORD", "value": "p"}, {"name": "API_TOKEN", "value": "t"}, {"name": "HOME", "value": "/"}]
    assert [e["value"] for e in evidence.redact({"env": env})["env"]] == [REDACTED, REDACTED, "/"]


def test_secret_looking_values_in_text():
    text = (f"key:\n{PEM}\nAuthorization: Bearer abcdefghijklmnop\njwt {JWT}\n"
            "vault hvs.CAESIJabcdefghijklmnopqrstuvwxyz\naws AKIAABCDEFGHIJKLMNOP\n"
            'password=hunter2 "api_key": "k-123" ok=value\n')
    out = evidence.redact_text(text)
    for leaked in ("MHcCAQEEIB0s3cr3t", "abcdefghijklmnop", JWT, "hvs.CAES", "AKIAABCDEFGHIJKLMNOP",
                   "hunter2", "k-123"):
        assert leaked not in out
    assert "Authorization: Bearer <redacted>" in out and "password=<redacted>" in out
    assert "ok=value" in out


def test_redact_reaches_into_lists_and_leaves_other_values():
    assert evidence.redact([{"token": "t"}, 3, None, True, f"log {JWT}"]) == [{"token": REDACTED}, 3, None, True,
                                                                             f"log {REDACTED}"]


def test_digests_compare_without_showing_values():
    a, b, c = evidence.digest("s3cret"), evidence.digest(b"s3cret"), evidence.digest("other")
    assert a == b and a != c
    assert "s3cret" not in repr(a) and repr(a).startswith("<secret hmac-sha256:") and "len=6" in repr(a)
    assert "s3cret" not in f"{a} != {c}"


def test_secret_digests_decode_data_and_compare_with_string_data():
    secret = {"data": {"a": base64.b64encode(b"value").decode(), "odd": "not-base64!"}, "stringData": {"b": "value"}}
    digests = evidence.secret_digests(secret)
    assert digests["a"] == digests["b"] == evidence.digest("value")
    assert digests["odd"] == evidence.digest("not-base64!")


def pod(ready: bool, phase="Running", waiting=None, restarts=0):
    state = k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason=waiting, message="back-off")) \
        if waiting else k8s.V1ContainerState(running=k8s.V1ContainerStateRunning())
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="probe", namespace="pcf-x"),
        spec=k8s.V1PodSpec(node_name="pcf-node", containers=[k8s.V1Container(name="c")]),
        status=k8s.V1PodStatus(phase=phase, conditions=[k8s.V1PodCondition(
            type="Ready", status="True" if ready else "False", reason=None if ready else "ContainersNotReady",
            message=None if ready else "containers with unready status: [c]")],
            container_statuses=[k8s.V1ContainerStatus(name="c", image="agnhost", image_id="", ready=ready,
                                                      restart_count=restarts, state=state)]))


def test_not_ready_pods_are_described_with_their_reasons():
    assert not evidence.not_ready(pod(True))
    assert evidence.not_ready(pod(False, waiting="ImagePullBackOff"))
    assert not evidence.not_ready(pod(False, phase="Succeeded"))
    text = evidence.describe_pod(pod(False, waiting="ImagePullBackOff", restarts=3))
    assert "pod pcf-x/probe on pcf-node: phase Running" in text
    assert "condition Ready=False (ContainersNotReady" in text
    assert "waiting (ImagePullBackOff: back-off)" in text and "restarts=3" in text


def test_diagnosis_text_and_json_keep_every_section():
    d = Diagnosis("suites/test_dns.py::test_x", (Section("events in pcf-x", "Warning BackOff"),
                                                 Section("CoreDNS", "replicas 0")))
    text = d.text()
    assert text.startswith("diagnosis of suites/test_dns.py::test_x")
    assert "== events in pcf-x ==\nWarning BackOff" in text and "== CoreDNS ==" in text
    assert d.to_dict()["sections"][1] == {"title": "CoreDNS", "body": "replicas 0"}


def test_a_part_that_cannot_be_collected_says_so():
    def broken():
        raise ConnectionError("refused\nmore")

    assert evidence._collect("events in x", broken) == Section("events in x", "could not collect: ConnectionError: refused")
