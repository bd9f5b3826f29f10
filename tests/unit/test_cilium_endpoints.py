"""The Cilium endpoint decision, on CiliumEndpoint objects shaped as the API returns them."""
from __future__ import annotations

from kubernetes import client as k8s

from conformance.probes import cilium


def cep(namespace, name, state, uid="u1"):
    """A CiliumEndpoint as `kubectl get ciliumendpoints -o json` lists it (the fields read here)."""
    status = {"id": 1234, "identity": {"id": 5678, "labels": ["k8s:app=web"]},
              "networking": {"addressing": [{"ipv4": "10.244.1.7"}], "node": "10.0.0.2"}}
    if state is not None:
        status["state"] = state
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint",
            "metadata": {"namespace": namespace, "name": name, "uid": uid}, "status": status}


def pod(namespace, name, phase="Running", host_network=False):
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(namespace=namespace, name=name),
                     spec=k8s.V1PodSpec(containers=[], host_network=host_network), status=k8s.V1PodStatus(phase=phase))


def test_ready_endpoints_for_every_running_pod_have_no_problem():
    found = cilium.endpoints_of([cep("web", "a", "ready"), cep("web", "b", "ready")],
                                [pod("web", "a"), pod("web", "b"), pod("kube-system", "agent", host_network=True),
                                 pod("web", "done", phase="Succeeded")])
    assert found.problems() == {}


def test_invalid_not_ready_and_disconnected_endpoints_are_problems():
    found = cilium.endpoints_of([cep("web", "a", "invalid"), cep("web", "b", "not-ready"),
                                 cep("web", "c", "disconnected"), cep("web", "d", None)], [])
    assert found.problems() == {"CiliumEndpoint web/a": "state invalid", "CiliumEndpoint web/b": "state not-ready",
                                "CiliumEndpoint web/c": "state disconnected", "CiliumEndpoint web/d": "state unset"}


def test_no_endpoints_while_pods_run_is_a_problem():
    found = cilium.endpoints_of([], [pod("web", "a"), pod("web", "b")])
    assert found.problems() == {"pod web/a": "no CiliumEndpoint at all while pods run",
                                "pod web/b": "no CiliumEndpoint at all while pods run"}


def test_a_running_pod_without_its_endpoint_is_a_problem():
    found = cilium.endpoints_of([cep("web", "a", "ready")], [pod("web", "a"), pod("web", "b")])
    assert found.problems() == {"pod web/b": "no CiliumEndpoint"}


def test_a_problem_that_stays_is_stuck_and_one_that_clears_is_not():
    first = cilium.endpoints_of([cep("web", "a", "not-ready"), cep("web", "b", "regenerating")],
                                [pod("web", "a"), pod("web", "b"), pod("web", "c")])
    later = cilium.endpoints_of([cep("web", "a", "disconnected"), cep("web", "b", "ready"), cep("web", "c", "ready"),
                                 cep("web", "new", "waiting-for-identity")],
                                [pod("web", "a"), pod("web", "b"), pod("web", "c"), pod("web", "new")])
    health = cilium.EndpointHealth(first, later)
    assert health.stuck == {"CiliumEndpoint web/a": "state disconnected"}
    assert "settling: CiliumEndpoint web/new: state waiting-for-identity" in str(health)


def test_an_invalid_endpoint_is_stuck_at_once():
    found = cilium.endpoints_of([cep("web", "a", "invalid")], [pod("web", "a")])
    assert cilium.EndpointHealth(found, found).stuck == {"CiliumEndpoint web/a": "state invalid"}
    fresh = cilium.endpoints_of([], [])
    assert cilium.EndpointHealth(fresh, found).stuck == {"CiliumEndpoint web/a": "state invalid"}
