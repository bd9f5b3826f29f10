"""Capture, from the real local cluster, the outputs the probe parser tests read.

    .venv/bin/python tests/data/capture.py [--kubeconfig /var/lib/platform-conformance/local/admin.conf]

It deploys the shared probe set (manifests/probes/shared.yaml) into a namespace of its own,
plus one probe pod whose egress a NetworkPolicy denies (so a lookup fails for want of a server,
as with a broken DNS path), and calls the probes themselves: every exec they make is recorded
verbatim (argv, stdout, stderr and the raw status document of the exec channel) while the probe
runs. Health endpoints, versions and pod states are read with the admin identity as raw API
replies. Each capture is one JSON file under tests/data/<probe>/, with its command and date;
the facts the tests compare against (namespace, addresses) go to tests/data/facts.json, and
tests/data/CAPTURES.md lists every capture. The namespace is deleted at the end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path

from kubernetes import client as k8s

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from conformance import manifests, pods  # noqa: E402
from conformance.cluster import paths  # noqa: E402
from conformance.profile import Images  # noqa: E402
from conformance.waiting import wait_for  # noqa: E402
from conformance.probes import control_plane as cp, dns, net, workloads  # noqa: E402

DATA = Path(__file__).resolve().parent
DOMAIN = "cluster.local"
NO_POD = "10.244.0.250"  # an address of the local pod network that no pod has
LABELS = {"app.kubernetes.io/managed-by": "platform-conformance",
          "pod-security.kubernetes.io/enforce": "restricted"}


class Recording:
    """An exec stream that keeps what the probe read from it."""

    def __init__(self, real, argv: list[str]):
        self.real, self.argv = real, argv
        self.stdout, self.stderr, self.status = [], [], None

    def __getattr__(self, name):
        return getattr(self.real, name)

    def read_stdout(self, *a):
        text = self.real.read_stdout(*a)
        self.stdout.append(text)
        return text

    def read_stderr(self, *a):
        text = self.real.read_stderr(*a)
        self.stderr.append(text)
        return text

    def read_channel(self, channel, *a):
        text = self.real.read_channel(channel, *a)
        if channel == 3:
            self.status = text
        return text


class Capture:
    def __init__(self, api: k8s.ApiClient):
        self.api = api
        self.streams: list[Recording] = []
        real = pods.stream

        def recording(method, *args, **kwargs):
            rec = Recording(real(method, *args, **kwargs), kwargs.get("command"))
            self.streams.append(rec)
            return rec

        pods.stream = recording

    def save(self, probe: str, case: str, doc: dict, command: str) -> None:
        out = DATA / probe / f"{case}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"captured": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "command": command, **doc}
        out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"{probe}/{case}: {command}", flush=True)

    def exec(self, probe: str, case: str, pod: pods.PodView, call) -> object:
        """Run `call()` (a probe function) and save the one exec it made."""
        self.streams.clear()
        result = call()
        [rec] = self.streams
        self.save(probe, case, {"pod": f"{pod.namespace}/{pod.name}", "argv": rec.argv, "stdout": "".join(rec.stdout),
                                "stderr": "".join(rec.stderr), "status": rec.status},
                  f"exec in {pod.where}: {' '.join(rec.argv)}")
        return result

    def kubectl(self, probe: str, case: str, *args: str, until=lambda text: True) -> str:
        """Save what `kubectl <args>` prints, once `until(output)` holds (a pod's state is a moment)."""
        argv = ["kubectl", f"--kubeconfig={self.kubeconfig}", *args]
        text = wait_for(f"kubectl {' '.join(args)} to show the state to capture", lambda: subprocess.run(
            argv, capture_output=True, text=True, check=True, timeout=30).stdout, until=until,
            timeout="container_restarted", interval=0.2)
        self.save(probe, case, {"stdout": text}, "kubectl " + " ".join(args))
        return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", default=str(paths.kubeconfig("admin")))
    parser.add_argument("--registry-prefix", default=None,
                        help="pull the probe images through this mirror prefix (the profile's images.registry_prefix)")
    parser.add_argument("--part", choices=("all", "exec", "api"), default="all",
                        help="exec: what the probes run in pods; api: health, versions, nodes and pods")
    args = parser.parse_args()
    api = manifests.api_client(args.kubeconfig)
    core = k8s.CoreV1Api(api)
    cap = Capture(api)
    cap.kubeconfig = args.kubeconfig
    ns = f"pcf-capture-{uuid.uuid4().hex[:6]}"
    images = Images(registry_prefix=args.registry_prefix)
    core.create_namespace({"metadata": {"name": ns, "labels": LABELS}})
    try:
        if args.part in ("all", "exec"):
            capture_exec(cap, api, ns, images)
        if args.part in ("all", "api"):
            capture_api(cap, api, ns, images)
    finally:
        core.delete_namespace(ns)
    index()
    return 0


def index() -> None:
    """List every capture under tests/data with its date and command in CAPTURES.md."""
    rows = []
    for path in sorted(DATA.glob("*/*.json")):
        doc = json.loads(path.read_text())
        rows.append(f"| {path.relative_to(DATA)} | {doc['captured']} | {doc['command'].replace('|', '&#124;')} |\n")
    (DATA / "CAPTURES.md").write_text("# Captured outputs (listed by tests/data/capture.py)\n\n"
                                      "| file | captured (UTC) | command |\n|---|---|---|\n" + "".join(rows))


def capture_exec(cap: Capture, api: k8s.ApiClient, ns: str, images: Images) -> None:
    """Every exec the DNS, HTTP and exec probes make, in the shared probe set and a pod whose egress is denied."""
    workloads.deploy(api, ns, images, DOMAIN)
    workloads.apply(api, ns, "client", images, NAME="blocked", ROLE="blocked")
    k8s.NetworkingV1Api(api).create_namespaced_network_policy(ns, {
        "metadata": {"name": "deny-egress"},
        "spec": {"podSelector": {"matchLabels": {"role": "blocked"}}, "policyTypes": ["Egress"]}})
    pods.wait_pod(api, ns, "blocked")
    found = workloads.ProbeSet.read(api, ns)
    probe, echo = found.clients[0], found.servers[0]
    blocked = pods.view(api, ns, "blocked")
    fqdn = found.fqdn("echo", DOMAIN)
    echo_v4 = next(ip for ip in echo.ips if ":" not in ip)
    facts = {"namespace": ns, "domain": DOMAIN, "echo_fqdn": fqdn, "echo_cluster_ips": list(found.services["echo"].cluster_ips),
             "echo_pod": echo.name, "echo_pod_ips": list(echo.ips), "probe_pod": probe.name}

    # glibc through getent: an answer, both families, no such name, and a silent server.
    cap.exec("dns", "getent-ahostsv4-service", probe, lambda: dns.getent(api, probe, fqdn, "4"))
    cap.exec("dns", "getent-ahosts-service", probe, lambda: dns.getent(api, probe, fqdn, "any"))
    cap.exec("dns", "getent-ahostsv4-short-name", probe, lambda: dns.getent(api, probe, "echo", "4"))
    cap.exec("dns", "getent-ahostsv4-nxdomain", probe, lambda: dns.getent(api, probe, f"no-such.{ns}.svc.{DOMAIN}", "4"))
    cap.exec("dns", "getent-ahostsv4-egress-denied", blocked, lambda: dns.getent(api, blocked, fqdn, "4"))
    # dig: each record type the suites ask for, the response codes, and no server reachable.
    cap.exec("dns", "dig-a-service", probe, lambda: dns.dig(api, probe, fqdn, "A"))
    cap.exec("dns", "dig-aaaa-service", probe, lambda: dns.dig(api, probe, fqdn, "AAAA"))
    cap.exec("dns", "dig-srv-named-port", probe, lambda: dns.dig(api, probe, f"_http._tcp.{fqdn}", "SRV"))
    cap.exec("dns", "dig-ptr-pod", probe, lambda: dns.dig(api, probe, echo_v4, "PTR"))
    cap.exec("dns", "dig-cname-externalname", probe, lambda: dns.dig(api, probe, found.fqdn("alias", DOMAIN), "CNAME"))
    cap.exec("dns", "dig-a-nxdomain", probe, lambda: dns.dig(api, probe, f"no-such.{ns}.svc.{DOMAIN}", "A"))
    pod_record = f"{echo_v4.replace('.', '-')}.{ns}.pod.{DOMAIN}"
    facts["pod_record"] = pod_record
    cap.exec("dns", "dig-aaaa-nodata", probe, lambda: dns.dig(api, probe, pod_record, "AAAA"))
    cap.exec("dns", "dig-a-refused-upstream", probe, lambda: dns.dig(api, probe, "platform-conformance.example.", "A"))
    cap.exec("dns", "dig-a-egress-denied", blocked, lambda: dns.dig(api, blocked, fqdn, "A"))
    # musl and Go, one JSON line per lookup; 20 samples for the percentiles.
    cap.exec("dns", "musl-service", probe, lambda: dns.musl(api, probe, fqdn, "4"))
    cap.exec("dns", "musl-nxdomain", probe, lambda: dns.musl(api, probe, f"no-such.{ns}.svc.{DOMAIN}", "4"))
    cap.exec("dns", "musl-egress-denied", blocked, lambda: dns.musl(api, blocked, fqdn, "4"))
    cap.exec("dns", "musl-latency-20", probe, lambda: dns.musl(api, probe, fqdn, "4", count=20))
    cap.exec("dns", "go-service", probe, lambda: dns.go(api, probe, fqdn, "A"))
    cap.exec("dns", "go-srv-named-port", probe, lambda: dns.go(api, probe, f"_http._tcp.{fqdn}", "SRV"))
    cap.exec("dns", "go-nxdomain", probe, lambda: dns.go(api, probe, f"no-such.{ns}.svc.{DOMAIN}", "A"))
    cap.exec("dns", "go-egress-denied", blocked, lambda: dns.go(api, blocked, fqdn, "A"))
    cap.exec("dns", "go-latency-20", probe, lambda: dns.go(api, probe, fqdn, "A", count=20))

    # HTTP through busybox nc: an answer, a refused port, an address nobody has, and a
    # connection the policy denies.
    cap.exec("http", "nc-echo-service", probe, lambda: net.http_get(api, probe, found.ipv4("echo"), workloads.ECHO_PORT))
    cap.exec("http", "nc-refused-port", probe, lambda: net.http_get(api, probe, echo_v4, 9))
    cap.exec("http", "nc-no-such-pod", probe, lambda: net.http_get(api, probe, NO_POD, workloads.ECHO_PORT))
    cap.exec("http", "nc-egress-denied", blocked, lambda: net.http_get(api, blocked, echo_v4, workloads.ECHO_PORT))

    # Exit codes of exec: success, a chosen code, a command that does not exist.
    cap.exec("exec", "exit-0", probe, lambda: pods.exec_in(api, ns, probe.name, ["id", "-u"]))
    cap.exec("exec", "exit-7", probe, lambda: pods.exec_in(api, ns, probe.name, ["sh", "-c", "id -u; exit 7"]))
    cap.exec("exec", "no-such-command", probe, lambda: pods.exec_in(api, ns, probe.name, ["pcf-no-such-command"]))

    (DATA / "facts.json").write_text(json.dumps(facts, indent=1) + "\n")


def capture_api(cap: Capture, api: k8s.ApiClient, ns: str, images: Images) -> None:
    """Health lines, versions, nodes and pod states, as the API serves them to the admin."""
    core = k8s.CoreV1Api(api)
    for endpoint in ("/livez", "/readyz"):
        health = cp.health(api, endpoint)
        cap.save("health", f"{endpoint.strip('/')}-verbose", {"status": health.http_status, "body": health.raw},
                 f"GET {endpoint}?verbose (admin identity)")
    cap.kubectl("versions", "server-version", "get", "--raw", "/version")
    cap.kubectl("versions", "nodes", "get", "nodes", "-o", "json")
    # Pods on the echo server's image (agnhost): one ready, one whose command exits 1 and is
    # restarted, one whose image does not exist (one container each, but the ready one).
    ready = workloads.render("server", images, NAME="ready")[0]  # the Pod, without its Service
    core.create_namespaced_pod(ns, ready)
    pods.wait_pod(api, ns, "ready")
    cap.kubectl("pods", "ready", "get", "pod", "-n", ns, "ready", "-o", "json")
    crasher = workloads.render("server", images, NAME="crasher")[0]
    crasher["spec"]["containers"] = crasher["spec"]["containers"][:1]
    crasher["spec"]["containers"][0].update(args=["pcf-no-such-subcommand"])
    crasher["spec"]["containers"][0].pop("readinessProbe", None)
    core.create_namespaced_pod(ns, crasher)
    cap.kubectl("pods", "crashing", "get", "pod", "-n", ns, "crasher", "-o", "json",
                until=lambda text: '"reason": "CrashLoopBackOff"' in text)
    pull = workloads.render("server", images, NAME="no-image")[0]
    pull["spec"]["containers"] = pull["spec"]["containers"][:1]
    pull["spec"]["containers"][0]["image"] = "localhost/platform-conformance/no-such-image:0"
    core.create_namespaced_pod(ns, pull)
    cap.kubectl("pods", "image-pull-failing", "get", "pod", "-n", ns, "no-image", "-o", "json",
                until=lambda text: '"reason": "ErrImagePull"' in text or '"reason": "ImagePullBackOff"' in text)

if __name__ == "__main__":
    sys.exit(main())
