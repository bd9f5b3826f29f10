"""The cluster's host processes: their configuration files and command lines, in start order."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from conformance.cluster import network as net
from conformance.cluster import bind9, crio, outside_web, paths, pki, registry
from conformance.cluster.build import Program

API_PORT = 6443
ETCD_CLIENT = "http://127.0.0.1:2379"
# Ports the cluster listens on; a foreign listener on any of them stops bring-up early.
PORTS = {2379: "etcd", 2380: "etcd peer", API_PORT: "kube-apiserver", 10250: "kubelet",
         10257: "kube-controller-manager", 10259: "kube-scheduler", 10249: "kube-proxy metrics",
         10256: "kube-proxy health", 20244: "kube-router health"}
# Host-side services, one module each (see registry.py for the shape), started after the
# cluster's own components; bring-up waits until each is ready.
SERVICES = (registry, outside_web)
PORTS.update({port: what for service in SERVICES for port, what in service.PORTS.items()})
API_SERVER = f"https://{net.NODE_IPV4}:{API_PORT}"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1"

# Every request is logged with its user and verb; the read-only promise is judged from it.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def containerd_config(ctr: Program) -> Path:
    """containerd 2 (config version 3): CRI with runc, the project's CNI dir, no OOM score writes."""
    conf = f"""version = 3
root = "{paths.STATE / 'containerd'}"
state = "{paths.RUN / 'containerd'}"

[grpc]
  address = "{paths.CONTAINERD_SOCK}"

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.cri.v1.images'.registry]
  # Registry hosts (e.g. the local registry over plain HTTP), read per pull.
  config_path = "{paths.REGISTRY_HOSTS}"

[plugins.'io.containerd.cri.v1.runtime']
  # Root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj cannot be written.
  restrict_oom_score_adj = true
  enable_selinux = false

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["{paths.CNI_BIN}"]
  conf_dir = "{paths.CNI_CONF}"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "/usr/sbin/runc"
"""
    return _write(paths.STATE / "containerd.toml", conf)


def cni_config() -> Path:
    """Bridge + host-local, dual-stack, with the node's fixed pod ranges."""
    conf = {
        "cniVersion": "1.0.0",
        "name": "pcf",
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": cidr}] for cidr in net.NODE_POD_CIDRS],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                    "dataDir": str(paths.STATE / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return _write(paths.CNI_CONF / "10-pcf.conflist", json.dumps(conf, indent=2))


def kubelet_config(runtime: str = "containerd") -> Path:
    crt, key = pki.issue("kubelet-serving", f"system:node:{net.NODE_NAME}", ("system:nodes",),
                         dns=(net.NODE_NAME, "localhost"), ips=(net.NODE_IPV4, net.NODE_IPV6, "127.0.0.1"),
                         server=True)
    conf = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(paths.PKI / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        # This machine runs cgroup v1 (hybrid); 1.35+ refuses it unless told otherwise.
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{paths.runtime_socket(runtime)}",
        "clusterDNS": [net.DNS_SERVICE_IP],
        "clusterDomain": net.CLUSTER_DOMAIN,
        "tlsCertFile": str(crt),
        "tlsPrivateKeyFile": str(key),
        # Root lacks CAP_SYS_RESOURCE, so the kubelet must not lower its own OOM score.
        "oomScoreAdj": 0,
        "podLogsDir": str(paths.STATE / "pod-logs"),
        "resolvConf": str(paths.STATE / "node-resolv.conf"),
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "hairpinMode": "hairpin-veth",
        "serializeImagePulls": False,
        # Images are preloaded under their upstream names and also pulled through the local
        # registry under mirrored names; the same image id pulled both ways must not make the
        # kubelet re-verify (and so re-pull) the preloaded name, which has no registry.
        "imagePullCredentialsVerificationPolicy": "NeverVerify",
        "staticPodPath": "",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }
    # Pods get the node's resolver only for names outside the cluster; the host's own may be
    # unreachable from pods, so the node resolver file points at the LAN resolver address.
    _write(paths.STATE / "node-resolv.conf", f"nameserver {net.NODE_IPV4}\n")
    return _write(paths.STATE / "kubelet.yaml", yaml.safe_dump(conf, sort_keys=False))


def kube_proxy_config() -> Path:
    conf = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(paths.kubeconfig("kube-proxy"))},
        "hostnameOverride": net.NODE_NAME,
        "clusterCIDR": ",".join(net.POD_CIDRS),
        "bindAddress": "0.0.0.0",
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
        # Leave the host's conntrack sysctls alone: they are not this cluster's to change.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return _write(paths.STATE / "kube-proxy.yaml", yaml.safe_dump(conf, sort_keys=False))


def runtime_spec(progs: dict[str, Program], runtime: str) -> dict:
    """The node's container runtime: containerd, or CRI-O (production's)."""
    if runtime == "cri-o":
        return crio.spec(progs["cri-o"], PAUSE_IMAGE, paths.CNI_CONF, paths.CNI_BIN)
    ctd = progs["containerd"]
    return {"name": "containerd", "log": str(paths.LOGS / "containerd.log"),
            "env": {"PATH": f"{ctd.bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
            "argv": [str(ctd.binary("containerd")), f"--config={containerd_config(ctd)}", "--log-level=warn"]}


def specs(progs: dict[str, Program], runtime: str = "containerd") -> list[dict]:
    """Command lines of every host process, in start order."""
    k8s, etcd, router = progs["kubernetes"], progs["etcd"], progs["kube-router"]
    pkidir = paths.PKI
    ca = str(pkidir / "ca.crt")
    api_crt, api_key = pki.issue(
        "apiserver", "kube-apiserver",
        dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc",
             f"kubernetes.default.svc.{net.CLUSTER_DOMAIN}", "localhost", net.NODE_NAME),
        ips=(*net.KUBERNETES_SERVICE_IPS, net.NODE_IPV4, net.NODE_IPV6, "127.0.0.1"), server=True)
    kubelet_client_crt, kubelet_client_key = pki.issue(
        "apiserver-kubelet-client", "pcf:apiserver-kubelet-client", ("system:masters",))
    sa_key, sa_pub = pki.service_account_keys()
    audit_policy = _write(paths.STATE / "audit-policy.yaml", yaml.safe_dump(AUDIT_POLICY))
    service_cidrs = ",".join(net.SERVICE_CIDRS)
    pod_cidrs = ",".join(net.POD_CIDRS)

    def log(name: str) -> str:
        return str(paths.LOGS / f"{name}.log")

    return [
        {"name": "etcd", "log": log("etcd"), "argv": [
            str(etcd.binary("etcd")), "--name=pcf", f"--data-dir={paths.STATE / 'etcd'}",
            f"--listen-client-urls={ETCD_CLIENT}", f"--advertise-client-urls={ETCD_CLIENT}",
            "--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=pcf=http://127.0.0.1:2380", "--listen-metrics-urls=",
            "--quota-backend-bytes=2147483648", "--log-level=warn"]},
        runtime_spec(progs, runtime),
        # The LAN's resolver: the upstream CoreDNS forwards to, answering for the outside host.
        {"name": "lan-dns", "log": log("lan-dns"), "argv": [
            # As root it keeps its credentials, so it still dies with the supervisor.
            "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", "--bind-interfaces", f"--listen-address={net.NODE_IPV4}", "--user=root",
            f"--pid-file={paths.RUN / 'lan-dns.pid'}",
            "--log-facility=-", *(f"--address=/{net.OUTSIDE_NAME}/{ip}" for ip in (net.OUTSIDE_IPV4, net.OUTSIDE_IPV6)),
            # The rest of the zone is bind9's (the edge tier's RFC2136 target), so names the
            # suites publish there resolve from pods too (cert-manager's HTTP-01 self-check).
            f"--server=/{bind9.ZONE}/{bind9.ADDRESS}#{bind9.PORT}"]},
        {"name": "kube-apiserver", "log": log("kube-apiserver"), "argv": [
            str(k8s.binary("kube-apiserver")), f"--etcd-servers={ETCD_CLIENT}",
            "--bind-address=0.0.0.0", f"--secure-port={API_PORT}", f"--advertise-address={net.NODE_IPV4}",
            f"--service-cluster-ip-range={service_cidrs}", f"--client-ca-file={ca}",
            f"--tls-cert-file={api_crt}", f"--tls-private-key-file={api_key}",
            f"--kubelet-client-certificate={kubelet_client_crt}", f"--kubelet-client-key={kubelet_client_key}",
            f"--kubelet-certificate-authority={ca}", "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-issuer=https://kubernetes.default.svc.{net.CLUSTER_DOMAIN}",
            f"--service-account-key-file={sa_pub}", f"--service-account-signing-key-file={sa_key}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", f"--audit-policy-file={audit_policy}",
            f"--audit-log-path={paths.AUDIT_LOG}", "--audit-log-maxsize=200", "--audit-log-maxbackup=1",
            "--profiling=false", "--v=1"]},
        {"name": "kube-controller-manager", "log": log("kube-controller-manager"), "argv": [
            str(k8s.binary("kube-controller-manager")),
            *(f"--{f}={paths.kubeconfig('controller-manager')}" for f in
              ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig")),
            f"--service-account-private-key-file={sa_key}", f"--root-ca-file={ca}",
            f"--cluster-signing-cert-file={ca}", f"--cluster-signing-key-file={pkidir / 'ca.key'}",
            "--use-service-account-credentials=true", "--allocate-node-cidrs=true",
            f"--cluster-cidr={pod_cidrs}", f"--service-cluster-ip-range={service_cidrs}",
            "--node-cidr-mask-size-ipv4=24", "--node-cidr-mask-size-ipv6=64",
            "--leader-elect=false", "--bind-address=127.0.0.1", "--v=1"]},
        {"name": "kube-scheduler", "log": log("kube-scheduler"), "argv": [
            str(k8s.binary("kube-scheduler")),
            *(f"--{f}={paths.kubeconfig('scheduler')}" for f in
              ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig")),
            "--leader-elect=false", "--bind-address=127.0.0.1", "--v=1"]},
        {"name": "kubelet", "log": log("kubelet"),
         "env": {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
         "argv": [
            str(k8s.binary("kubelet")), f"--config={kubelet_config(runtime)}",
            f"--kubeconfig={paths.kubeconfig('kubelet')}", f"--root-dir={paths.STATE / 'kubelet'}",
            f"--hostname-override={net.NODE_NAME}", f"--node-ip={net.NODE_IPV4},{net.NODE_IPV6}",
            "--v=1"]},
        {"name": "kube-proxy", "log": log("kube-proxy"), "argv": [
            str(k8s.binary("kube-proxy")), f"--config={kube_proxy_config()}", "--v=1"]},
        {"name": "kube-router", "log": log("kube-router"), "argv": [
            str(router.binary("kube-router")), f"--kubeconfig={paths.kubeconfig('kube-router')}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
            # IPv4 only: with IPv6 on, this release's policy sync aborts now and then on an
            # ip6tables-restore naming an ipset it has not made, and then enforces nothing at all
            # for a while. The policy promises probe over IPv4; the README states the limit.
            "--enable-ipv4=true", "--enable-ipv6=false", f"--hostname-override={net.NODE_NAME}",
            "--health-port=20244", "--metrics-port=0", "--v=1"]},
        *(service.spec() for service in SERVICES),
    ]
