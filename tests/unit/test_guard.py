"""The write guard: each rule that refuses and each that allows, and that a refused request
never leaves the process."""
from __future__ import annotations

import socket

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes.stream import stream

from conformance import profile as profiles
from conformance.guard import GuardedApiClient, WriteGuard, WriteRefused, parse

RUN = "pcf-abcd1234-"
FULL = WriteGuard(mode="full", run_prefixes=(RUN,), cluster_scoped=frozenset({"clusterissuers.cert-manager.io"}),
                  namespaced=frozenset({("applications.argoproj.io", "argocd")}))
READ_ONLY = WriteGuard(mode="read-only", run_prefixes=(RUN,))
HOST = "https://127.0.0.1:6443"


def request(method, path, body=None, content_type=""):
    return parse(method, HOST + path, body, content_type)


# --- parsing: the authoriser's view of a request ---------------------------------------------

@pytest.mark.parametrize("method,path,expected", [
    ("GET", "/api/v1/namespaces/ns/pods", ("list", "", "pods", "", "ns", None)),
    ("GET", "/api/v1/namespaces/ns/pods?watch=true", ("watch", "", "pods", "", "ns", None)),
    ("GET", "/api/v1/namespaces/ns/pods/p", ("get", "", "pods", "", "ns", "p")),
    ("GET", "/api/v1/namespaces/ns/pods/p/log", ("get", "", "pods", "log", "ns", "p")),
    ("POST", "/api/v1/namespaces/ns/pods/p/exec", ("create", "", "pods", "exec", "ns", "p")),
    ("PUT", "/apis/apps/v1/namespaces/ns/deployments/d/scale", ("update", "apps", "deployments", "scale", "ns", "d")),
    ("DELETE", "/api/v1/namespaces/ns/configmaps", ("deletecollection", "", "configmaps", "", "ns", None)),
    ("DELETE", "/api/v1/namespaces/ns", ("delete", "", "namespaces", "", "ns", "ns")),
    ("PUT", "/api/v1/namespaces/ns/finalize", ("update", "", "namespaces", "finalize", "ns", "ns")),
    ("GET", "/apis/cert-manager.io/v1/clusterissuers", ("list", "cert-manager.io", "clusterissuers", "", None, None)),
    ("PATCH", "/apis/cert-manager.io/v1/clusterissuers/ci", ("patch", "cert-manager.io", "clusterissuers", "", None, "ci")),
])
def test_parse(method, path, expected):
    r = request(method, path)
    assert (r.verb, r.group, r.resource, r.subresource, r.namespace, r.name) == expected


def test_parse_create_takes_name_from_body():
    r = request("POST", "/api/v1/namespaces", {"metadata": {"name": RUN + "x"}})
    assert (r.verb, r.resource, r.namespace, r.name) == ("create", "namespaces", None, RUN + "x")
    g = request("POST", "/api/v1/namespaces", {"metadata": {"generateName": RUN}})
    assert g.name == RUN + "*"


def test_parse_server_side_apply_by_content_type():
    assert request("PATCH", "/api/v1/namespaces/ns/configmaps/c", {}, "application/apply-patch+yaml").verb == "apply"


def test_parse_non_resource_urls():
    assert request("GET", "/livez?verbose").resource == ""
    assert request("GET", "/apis/apps/v1").is_read


# --- reads -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/namespaces/kube-system/pods", "/api/v1/nodes/n",
                                  "/api/v1/namespaces/kube-system/pods/p/log", "/readyz?verbose",
                                  "/api/v1/namespaces/kube-system/pods?watch=1"])
@pytest.mark.parametrize("guard", [READ_ONLY, FULL], ids=["read-only", "full"])
def test_reads_are_always_allowed(guard, path):
    assert guard.decide(request("GET", path)) == "reads are always allowed"


# --- read-only mode refuses every write ------------------------------------------------------

@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/v1/namespaces", {"metadata": {"name": RUN + "x"}}),
    ("POST", f"/api/v1/namespaces/{RUN}x/configmaps", {"metadata": {"name": "c"}}),
    ("DELETE", f"/api/v1/namespaces/{RUN}x", None),
    ("PATCH", "/apis/coordination.k8s.io/v1/namespaces/pcf-system/leases/l", {}),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {}),
])
def test_read_only_refuses_every_write(method, path, body):
    with pytest.raises(WriteRefused, match="read-only run"):
        READ_ONLY.decide(request(method, path, body))


@pytest.mark.parametrize("sub", ["exec", "attach", "portforward", "proxy"])
def test_read_only_refuses_actions_on_pods_even_as_get(sub):
    r = request("GET", f"/api/v1/namespaces/{RUN}x/pods/p/{sub}")
    with pytest.raises(WriteRefused, match="read-only"):
        READ_ONLY.decide(r)
    assert FULL.decide(r) == "the namespace is one of the run's"


# --- full mode: what is allowed ---------------------------------------------------------------

@pytest.mark.parametrize("method,path,body,rule", [
    ("POST", "/api/v1/namespaces", {"metadata": {"name": RUN + "dns"}}, "one of the run's"),
    ("POST", "/api/v1/namespaces", {"metadata": {"generateName": RUN}}, "one of the run's"),
    ("DELETE", f"/api/v1/namespaces/{RUN}dns", None, "one of the run's"),
    ("POST", f"/api/v1/namespaces/{RUN}dns/pods", {"metadata": {"name": "p"}}, "one of the run's"),
    ("DELETE", f"/api/v1/namespaces/{RUN}dns/pods", None, "one of the run's"),
    ("POST", "/apis/coordination.k8s.io/v1/namespaces/pcf-system/leases", {}, "control namespace"),
    ("PUT", "/api/v1/namespaces/pcf-system/configmaps/m", {}, "control namespace"),
    ("POST", "/apis/cert-manager.io/v1/clusterissuers", {"metadata": {"name": "t"}}, "cluster-scoped allowlist"),
    ("DELETE", "/apis/cert-manager.io/v1/clusterissuers/t", None, "cluster-scoped allowlist"),
    ("POST", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications", {}, "namespaced allowlist"),
])
def test_full_mode_allows(method, path, body, rule):
    assert rule in FULL.decide(request(method, path, body))


# --- full mode: what is refused, and why -----------------------------------------------------

@pytest.mark.parametrize("method,path,body,why", [
    ("POST", "/api/v1/namespaces", {"metadata": {"name": "default2"}}, "not one of the run's"),
    ("POST", "/api/v1/namespaces", {"metadata": {"name": "pcf-zzzz9999-x"}}, "not one of the run's"),
    ("DELETE", "/api/v1/namespaces/kube-system", None, "not one of the run's"),
    ("DELETE", "/api/v1/namespaces/pcf-system", None, "managed by the RBAC manifests"),
    ("POST", "/api/v1/namespaces/default/pods", {}, "not the run's"),
    ("PATCH", "/apis/apps/v1/namespaces/kube-system/deployments/coredns", {}, "not the run's"),
    ("DELETE", "/api/v1/namespaces/kube-system/configmaps", None, "deletecollection outside"),
    ("POST", "/apis/argoproj.io/v1alpha1/namespaces/default/applications", {}, "write_allowlist.namespaced"),
    ("POST", "/apis/metallb.io/v1beta1/namespaces/metallb/ipaddresspools", {}, "write_allowlist.namespaced"),
    ("POST", "/apis/storage.k8s.io/v1/storageclasses", {}, "write_allowlist.cluster_scoped"),
    ("PATCH", "/api/v1/nodes/pcf-node", {}, "write_allowlist.cluster_scoped"),
    ("DELETE", "/apis/cert-manager.io/v1/clusterissuers", None, "cluster-wide deletecollection"),
    ("POST", "/api/v1/some-non-resource", {}, "non-resource"),
])
def test_full_mode_refuses(method, path, body, why):
    with pytest.raises(WriteRefused) as caught:
        FULL.decide(request(method, path, body))
    assert why in str(caught.value)


def test_guard_from_profile_allowlist():
    p = profiles.load("production")
    guard = WriteGuard.for_profile("full", [RUN], p.write_allowlist)
    assert guard.decide(request("POST", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications", {}))
    with pytest.raises(WriteRefused):
        guard.decide(request("POST", "/apis/argoproj.io/v1alpha1/namespaces/rook/applications", {}))


# --- in the client: refused before anything leaves -------------------------------------------

@pytest.fixture
def listener():
    """A local TCP port that records whether anything connected to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.5)
    yield sock
    sock.close()


def connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


def guarded(port: int, guard: WriteGuard, stamp=None) -> GuardedApiClient:
    conf = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    conf.retries = 0
    return GuardedApiClient(conf, guard, stamp)


def test_refused_write_never_opens_a_connection(listener):
    api = guarded(listener.getsockname()[1], FULL)
    with pytest.raises(WriteRefused, match="kube-system"):
        k8s.CoreV1Api(api).create_namespaced_config_map("kube-system", {"metadata": {"name": "x"}})
    with pytest.raises(WriteRefused):
        k8s.CoreV1Api(api).delete_namespace("kube-system")
    assert not connected(listener)


def test_allowed_write_does_leave(listener):
    """The control for the test above: the same client does connect when the guard allows."""
    api = guarded(listener.getsockname()[1], FULL)
    with pytest.raises((urllib3.exceptions.HTTPError, k8s.ApiException)):
        k8s.CoreV1Api(api).create_namespaced_config_map(
            RUN + "dns", {"metadata": {"name": "x"}}, _request_timeout=(0.5, 0.5))
    assert connected(listener)


def test_refused_on_a_closed_port_is_the_guards_error_not_a_connection_error():
    api = guarded(1, READ_ONLY)
    with pytest.raises(WriteRefused):
        k8s.CoreV1Api(api).create_namespace({"metadata": {"name": RUN + "x"}})
    with pytest.raises(urllib3.exceptions.HTTPError):  # a read does leave, and meets the closed port
        k8s.CoreV1Api(api).list_namespace(_request_timeout=(0.5, 0.5))


def test_exec_stream_is_refused_in_read_only_mode(listener):
    api = guarded(listener.getsockname()[1], READ_ONLY)
    with pytest.raises(WriteRefused, match="exec"):
        stream(k8s.CoreV1Api(api).connect_get_namespaced_pod_exec, "p", "kube-system",
               command=["true"], stderr=True, stdin=False, stdout=True, tty=False)
    assert not connected(listener)


def test_serialised_and_raw_requests_are_both_checked(listener):
    """The typed and dynamic clients serialise through param_serialize; anything calling
    call_api directly is checked there too."""
    api = guarded(listener.getsockname()[1], FULL)
    with pytest.raises(WriteRefused, match="default"):
        api.param_serialize("POST", "/apis/apps/v1/namespaces/{namespace}/deployments",
                            path_params={"namespace": "default"}, body={"metadata": {"name": "d"}})
    with pytest.raises(WriteRefused, match="default"):
        api.call_api("POST", api.configuration.host + "/apis/apps/v1/namespaces/default/deployments",
                     {"Content-Type": "application/json"}, {"metadata": {"name": "d"}})
    assert not connected(listener)


def test_creates_are_stamped_and_other_requests_are_not():
    def stamp(body):
        return {**body, "metadata": {**body["metadata"], "labels": {"run": "abcd1234"}}}

    api = guarded(1, FULL, stamp)
    _, _, _, created, _ = api.param_serialize(
        "POST", "/api/v1/namespaces/{namespace}/configmaps", path_params={"namespace": RUN + "x"},
        body={"metadata": {"name": "c"}})
    assert created["metadata"]["labels"] == {"run": "abcd1234"}
    _, _, _, replaced, _ = api.param_serialize(
        "PUT", "/api/v1/namespaces/{namespace}/configmaps/{name}",
        path_params={"namespace": RUN + "x", "name": "c"}, body={"metadata": {"name": "c"}})
    assert "labels" not in replaced["metadata"]
    _, _, _, evicted, _ = api.param_serialize(
        "POST", "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
        path_params={"namespace": RUN + "x", "name": "p"}, body={"metadata": {"name": "p"}})
    assert "labels" not in evicted["metadata"]
