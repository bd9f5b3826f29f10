"""The kind provider's configuration: production's shape, this machine's quirks, the local
cluster's ranges left alone."""
from __future__ import annotations

import ipaddress

import pytest
import yaml

from conformance.cluster import kind, kind_node, network
from conformance.cluster.errors import HarnessError

IMAGE = "localhost/platform-conformance/kind-node:v1.36.1"


def _patch(config: dict, kind_name: str) -> dict:
    found = [yaml.safe_load(p) for p in config["kubeadmConfigPatches"] if yaml.safe_load(p)["kind"] == kind_name]
    assert len(found) == 1, config["kubeadmConfigPatches"]
    return found[0]


def test_one_control_plane_and_workers_all_on_the_built_image():
    config = kind.cluster_config(IMAGE, workers=2)
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]
    assert {n["image"] for n in config["nodes"]} == {IMAGE}
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4" and config["name"] == kind.NAME


def test_dual_stack_with_ranges_apart_from_the_local_cluster():
    net = kind.cluster_config(IMAGE)["networking"]
    assert net["ipFamily"] == "dual"
    kind_ranges = [ipaddress.ip_network(r) for key in ("podSubnet", "serviceSubnet") for r in net[key].split(",")]
    assert sorted(r.version for r in kind_ranges) == [4, 4, 6, 6]
    local = [ipaddress.ip_network(r, strict=False) for r in (*network.POD_CIDRS, *network.SERVICE_CIDRS,
                                                f"{network.NODE_IPV4}/{network.LAN_PREFIX4}")]
    overlaps = [(a, b) for a in kind_ranges + [ipaddress.ip_network(s) for s in kind.NETWORK_SUBNETS]
                for b in local if a.version == b.version and a.overlaps(b)]
    assert overlaps == []


def test_machine_quirks_reach_the_nodes():
    config = kind.cluster_config(IMAGE)
    kubelet = _patch(config, "KubeletConfiguration")
    assert kubelet["failCgroupV1"] is False and kubelet["oomScoreAdj"] == 0
    assert "containerdConfigPatches" not in config   # kind would restart containerd mid-import
    conf = kind.containers_conf()
    assert f"nofile={kind_node.NOFILE}:{kind_node.NOFILE}" in conf


def test_control_plane_images_are_the_ones_built_here():
    cluster = _patch(kind.cluster_config(IMAGE, etcd_tag="3.6.16"), "ClusterConfiguration")
    assert cluster["etcd"]["local"]["imageTag"] == "3.6.16"
    # CoreDNS comes from the stack, as on the local cluster, not from kubeadm's addon.
    assert cluster["dns"]["disabled"] is True


def test_default_variant_keeps_kube_proxy_and_the_cilium_variant_drops_it():
    assert kind.cluster_config(IMAGE)["networking"]["kubeProxyMode"] == "iptables"
    cilium = kind.cluster_config(IMAGE, variant="cilium")["networking"]
    assert cilium["kubeProxyMode"] == "none" and cilium["disableDefaultCNI"] is True


@pytest.mark.parametrize("kwargs, words", [({"variant": "flannel"}, "flannel"), ({"workers": 0}, "worker")])
def test_bad_shapes_are_refused_naming_the_input(kwargs, words):
    with pytest.raises(HarnessError, match=words):
        kind.cluster_config(IMAGE, **kwargs)


def test_kube_router_manifest_runs_the_image_built_here_in_both_families():
    from conformance.cluster import build

    progs = build.programs()
    if not progs["kube-router"].source_dir().is_dir():
        pytest.skip("kube-router's module is not in the Go module cache (nox -s cluster fetches it)")
    docs = kind.kube_router_manifest(progs)
    ds = next(d for d in docs if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]
    images = {c["image"] for c in ds["containers"] + ds["initContainers"]}
    assert images == {f"docker.io/cloudnativelabs/kube-router:{progs['kube-router'].version}"}
    assert {"--enable-ipv4=true", "--enable-ipv6=true", "--run-service-proxy=false"} <= set(ds["containers"][0]["args"])


def _component(name: str):
    from conformance import stack

    return next(c for c in stack.components() if c.name == name)


def test_stack_on_kind_puts_coredns_and_the_pool_where_the_kind_profile_expects_them():
    from conformance import profile, stack

    prof = profile.load("kind")
    dns = next(d for d in stack.documents(_component("coredns"), provider="kind") if d["kind"] == "Service")
    assert dns["spec"]["clusterIPs"][0] == prof.component("dns").ip
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(net)
               for ip, net in zip(dns["spec"]["clusterIPs"], kind.SERVICE_SUBNETS))
    pool = next(d for d in stack.documents(_component("metallb-pool"), provider="kind") if d["kind"] == "IPAddressPool")
    expected = prof.component("metallb").pool_addresses[0]
    assert (pool["metadata"]["name"], tuple(pool["spec"]["addresses"])) == (expected.pool, tuple(expected.addresses))
    first = [ipaddress.ip_address(r.split("-")[0]) for r in pool["spec"]["addresses"]]
    assert all(any(ip in ipaddress.ip_network(n) for n in kind.NETWORK_SUBNETS) for ip in first)
    # The local cluster's documents are untouched by the kind patches.
    local = next(d for d in stack.documents(_component("coredns")) if d["kind"] == "Service")
    assert local["spec"]["clusterIP"] == "10.96.0.10"


def test_a_provider_without_stack_patches_is_refused_by_name():
    from conformance import InputError, stack

    with pytest.raises(InputError, match="provider 'nosuch'"):
        stack.documents(_component("coredns"), provider="nosuch")


def test_node_containerd_config_is_kinds_with_this_machines_two_differences():
    upstream = ('[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "registry.k8s.io/pause:3.10"\n'
                "  tolerate_missing_hugepages_controller = true\n  restrict_oom_score_adj = false\n")
    got = kind_node.containerd_config(upstream)
    assert got == upstream.replace("= false", "= true").replace("pause:3.10", "pause:3.10.1")


def test_node_containerd_config_refuses_an_upstream_that_changed():
    with pytest.raises(HarnessError, match="restrict_oom_score_adj = false"):
        kind_node.containerd_config('sandbox_image = "x"\n')
