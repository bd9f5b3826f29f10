"""Bring the local cluster up and down: the `cluster` and `cluster-down` nox sessions."""
from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from conformance.cluster import build, components, crio, host, network, paths, pki, stack_images
from conformance.cluster.errors import HarnessError
from conformance.manifests import apply_paths
from conformance.waiting import WaitTimeout, wait_for

SUPERVISOR_STOP_S = 90
UP_LIMITS_S = {"etcd": 60, "kube-apiserver": 120, "runtime": 60, "node-ready": 180}


def _supervisor_pid(pid_file: Path = paths.SUPERVISOR_PID) -> int | None:
    """The running supervisor's pid; a zombie or a recycled pid does not count."""
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    found = host.proc_stat(pid)
    if found is None or found[0] == "Z" or b"conformance.cluster.supervisor" not in cmdline:
        return None
    return pid


def _tier_files(tier: str) -> tuple[Path, Path, Path]:
    """A tier supervisor's spec, pid and status files."""
    return (paths.STATE / f"services-{tier}.json", paths.STATE / f"supervisor-{tier}.pid",
            paths.STATE / f"status-{tier}.json")


def _tiers_running() -> list[str]:
    return sorted(f.stem.removeprefix("supervisor-") for f in paths.STATE.glob("supervisor-*.pid"))


def status() -> dict:
    """What the supervisors report about each component; empty when no cluster runs."""
    out: dict = {}
    pairs = [(paths.SUPERVISOR_PID, paths.STATE / "status.json")]
    pairs += [_tier_files(tier)[1:] for tier in _tiers_running()]
    for pid_file, status_file in pairs:
        if _supervisor_pid(pid_file) is not None and status_file.exists():
            out.update(json.loads(status_file.read_text()))
    return out


def _until(what: str, check, limit_s: float, log_file: Path | None = None):
    """Wait for `check` to hold; on timeout say what, show the evidence and the component's log."""
    try:
        return wait_for(what, check, timeout=limit_s, interval=0.5)
    except WaitTimeout as exc:
        tail = ""
        if log_file and log_file.exists():
            lines = log_file.read_text(errors="replace").splitlines()[-15:]
            tail = "\n  last log lines:\n    " + "\n    ".join(lines)
        raise HarnessError(f"{exc}{tail}",
                           fix=f"read {log_file or paths.LOGS}; `nox -s cluster-down` clears a broken cluster") from None


def _https_get(path: str, timeout: float = 5) -> str:
    ctx = ssl.create_default_context(cafile=str(paths.PKI / "ca.crt"))
    ctx.load_cert_chain(str(paths.PKI / "admin.crt"), str(paths.PKI / "admin.key"))
    with urllib.request.urlopen(f"{components.API_SERVER}{path}", context=ctx, timeout=timeout) as resp:
        return resp.read().decode()


def _kubectl(*args: str, timeout: float = 30) -> str:
    proc = subprocess.run(["kubectl", f"--kubeconfig={paths.kubeconfig('admin')}", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return proc.stdout


def _node_ready() -> bool:
    out = _kubectl("get", "node", network.NODE_NAME, "-o",
                   "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
    return out.strip() == "True"


def _start_supervisor(spec: Path = paths.SUPERVISOR_SPEC, pid_file: Path = paths.SUPERVISOR_PID,
                      log_name: str = "supervisor") -> None:
    paths.LOGS.mkdir(parents=True, exist_ok=True)
    out = open(paths.LOGS / f"{log_name}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance.cluster.supervisor", str(spec)],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        cwd=str(paths.REPO), env=dict(os.environ, PYTHONPATH=str(paths.REPO)),
    )
    out.close()
    pid_file.write_text(str(proc.pid))


def start_services(tier: str, services: list, log=print) -> None:
    """Run a tier's host-side services (modules shaped like registry.py) under a supervisor of
    their own, started after the cluster's; a no-op when it already runs them all and each is
    ready. `cluster down` stops it with the rest."""
    if _supervisor_pid() is None:
        raise HarnessError("the local cluster is not running", fix="bring it up first: nox -s cluster")
    spec_file, pid_file, status_file = _tier_files(tier)
    names = [service.NAME for service in services]
    running = _supervisor_pid(pid_file)
    if running is not None:
        spec = json.loads(spec_file.read_text())
        if [c["name"] for c in spec["components"]] == names and all(service.ready() for service in services):
            return
        _stop_supervisor(running, f"the {tier} tier's supervisor", log)
    host.ensure_packages(log, extra={p: p for service in services for p in getattr(service, "PACKAGES", ())})
    host.check_ports({port: what for service in services for port, what in service.PORTS.items()})
    spec_file.write_text(json.dumps({"hold_dir": str(paths.HOLD), "status": str(status_file),
                                     "components": [service.spec() for service in services]}, indent=1))
    _start_supervisor(spec_file, pid_file, f"supervisor-{tier}")
    for service in services:
        _until(f"host service {service.NAME} to be ready", service.ready, service.READY_S,
               paths.LOGS / f"{service.NAME}.log")
    log(f"{tier} tier host services ready: {', '.join(names)}")


def _stop_supervisor(pid: int, what: str, log=print) -> None:
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(f"{what} to stop every component", lambda: (host.proc_stat(pid) or ("Z",))[0] == "Z",
                 timeout=SUPERVISOR_STOP_S, interval=0.2)
    except WaitTimeout as exc:
        log(f"{exc}\nkilling it")
        os.kill(pid, signal.SIGKILL)


def _healthy() -> bool:
    try:
        return "ok" in _https_get("/readyz", timeout=3) and _node_ready()
    except Exception:
        return False


def up(log=print, runtime: str | None = None) -> None:
    """Bring the cluster up, building what is missing; a no-op when it is up and healthy (and
    runs the runtime asked for). `runtime`: cri-o or containerd; default: the one running, else
    $PCF_RUNTIME, else CRI-O (production's)."""
    if os.geteuid() != 0:
        raise HarnessError("the local cluster needs root", fix="run as root (the CI machines are)")
    if runtime is not None and runtime not in paths.RUNTIMES:
        raise HarnessError(f"--runtime={runtime}: not a runtime the local cluster runs",
                           fix=f"use one of: {', '.join(paths.RUNTIMES)}")
    if _supervisor_pid() is not None:
        if _healthy() and runtime in (None, paths.runtime()):
            log(f"the local cluster is already up and healthy (runtime {paths.runtime()})")
            return
        if _healthy():
            log(f"the running cluster uses {paths.runtime()}: taking it down to start it with {runtime}")
            down(log)
        log("an earlier cluster is running but not healthy: taking it down first")
        down(log)
    elif paths.STATE.exists():
        log("found the remains of a stopped earlier cluster: removing them first")
        down(log)
    runtime = runtime or os.environ.get("PCF_RUNTIME") or paths.DEFAULT_RUNTIME
    if runtime not in paths.RUNTIMES:
        raise HarnessError(f"PCF_RUNTIME={runtime}: not a runtime the local cluster runs",
                           fix=f"use one of: {', '.join(paths.RUNTIMES)}")
    host.check_disk(paths.CACHE, paths.STATE)
    host.ensure_packages(log, extra={**stack_images.packages(("core",)), **crio.PACKAGES})
    host.check_ports(components.PORTS)
    t0 = time.monotonic()
    progs = build.build_all(log=log)
    if runtime == "containerd":
        progs = build.build_all(["containerd"], log=log)
    log(f"programs ready in {time.monotonic() - t0:.0f} s")
    archives = stack_images.build_all(progs, log=log)

    paths.STATE.mkdir(parents=True, exist_ok=True)
    paths.RUNTIME_FILE.write_text(runtime)
    paths.HOLD.mkdir(parents=True, exist_ok=True)
    (paths.STATE / "baseline.json").write_text(json.dumps(asdict(network.ruleset())))
    sysctls = network.up()
    (paths.STATE / "sysctl-before.json").write_text(json.dumps(sysctls))
    pki.ensure_ca()
    for identity in pki.IDENTITIES:
        pki.write_kubeconfig(identity, components.API_SERVER)
    components.cni_config()
    spec = {"hold_dir": str(paths.HOLD), "status": str(paths.STATE / "status.json"),
            "components": components.specs(progs, runtime)}
    paths.SUPERVISOR_SPEC.write_text(json.dumps(spec, indent=1))
    _start_supervisor()
    _until("etcd to answer /health", lambda: urllib.request.urlopen(
        f"{components.ETCD_CLIENT}/health", timeout=3).status == 200, UP_LIMITS_S["etcd"], paths.LOGS / "etcd.log")
    _until(f"{runtime}'s socket", paths.runtime_socket(runtime).exists, UP_LIMITS_S["runtime"],
           paths.LOGS / f"{components.runtime_spec(progs, runtime)['name']}.log")
    stack_images.load_all(progs, archives, log=log)
    for service in components.SERVICES:
        _until(f"host service {service.NAME} to be ready", service.ready, service.READY_S,
               paths.LOGS / f"{service.NAME}.log")
    _until("kube-apiserver /readyz", lambda: "ok" in _https_get("/readyz"), UP_LIMITS_S["kube-apiserver"],
           paths.LOGS / "kube-apiserver.log")
    apply_paths([paths.MANIFESTS / "local-cluster"], kubeconfig=paths.kubeconfig("admin"))
    _until(f"node {network.NODE_NAME} to be Ready", _node_ready, UP_LIMITS_S["node-ready"], paths.LOGS / "kubelet.log")
    log(f"the local cluster is up in {time.monotonic() - t0:.0f} s (runtime {runtime}); "
        f"admin kubeconfig: {paths.kubeconfig('admin')}")


def hold(component: str, held: bool) -> None:
    """Stop (held) or let the supervisor restart (released) one component, for fault injection."""
    specs = [paths.SUPERVISOR_SPEC] + [_tier_files(tier)[0] for tier in _tiers_running()]
    names = [c["name"] for spec in specs if spec.exists() for c in json.loads(spec.read_text())["components"]]
    if component not in names:
        raise HarnessError(f"no component named {component!r}", fix=f"use one of: {', '.join(names)}")
    flag = paths.HOLD / component
    if held:
        flag.touch()
    else:
        flag.unlink(missing_ok=True)


def down(log=print) -> None:
    """Stop everything the cluster started and remove everything it created (not the cache)."""
    if paths.STATE.exists():
        for tier in reversed(_tiers_running()):
            pid = _supervisor_pid(_tier_files(tier)[1])
            if pid is not None:
                _stop_supervisor(pid, f"the {tier} tier's supervisor", log)
    pid = _supervisor_pid()
    if pid is not None:
        _stop_supervisor(pid, "the supervisor", log)
    # Shims, pod processes and anything else run from the cluster's binaries.
    roots = (paths.CACHE / "bin", paths.STATE, paths.RUN)
    host.kill_all(host.pids_using(roots, marker=paths.RUN))
    host.unmount_all((paths.STATE, paths.RUN, Path("/run/netns")))
    sysctls = {}
    if (paths.STATE / "sysctl-before.json").exists():
        sysctls = json.loads((paths.STATE / "sysctl-before.json").read_text())
    network.down(sysctls)
    baseline = None
    if (paths.STATE / "baseline.json").exists():
        data = json.loads((paths.STATE / "baseline.json").read_text())
        baseline = network.Ruleset(data["iptables"], data["ip6tables"], tuple(data["nft_tables"]), tuple(data["ipsets"]))
    network.clean_rules(baseline)
    host.remove_cgroups()
    for d in (paths.STATE, paths.RUN, paths.CNI_CONF.parents[1]):
        shutil.rmtree(d, ignore_errors=True)
    for d in (paths.STATE.parent,):
        if d.exists() and not any(d.iterdir()):
            d.rmdir()
    log("the local cluster is down; build cache kept at " + str(paths.CACHE))
