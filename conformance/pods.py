"""Run a command inside a pod and keep the evidence: the primitive under in-cluster probes."""
from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.stream import portforward, stream

from conformance import interrupts
from conformance.waiting import wait_for

EXEC_TIMEOUT_S = 30


@dataclass(frozen=True)
class ExecResult:
    """What a command run in a pod printed and how it ended."""

    namespace: str
    pod: str
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.pod}"


def _exit_code(status: str | None) -> int:
    """Read the exit code from the exec channel's final status document."""
    if not status:
        return -1
    doc = yaml.safe_load(status)
    if doc.get("status") == "Success":
        return 0
    for cause in doc.get("details", {}).get("causes", []):
        if cause.get("reason") == "ExitCode":
            return int(cause["message"])
    return -1


def exec_in(api: k8s.ApiClient, namespace: str, pod: str, argv: list[str], container: str | None = None,
            timeout_s: float = EXEC_TIMEOUT_S) -> ExecResult:
    """Run argv in the pod (no shell) and collect stdout, stderr and the exit code."""
    core = k8s.CoreV1Api(api)
    t0 = time.monotonic()
    with interrupts.surfaced():  # the client turns a Ctrl-C during its handshake into an ApiException
        resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, command=argv, container=container,
                      stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False,
                      _request_timeout=timeout_s)
    out, err = [], []
    deadline = t0 + timeout_s
    while resp.is_open() and time.monotonic() < deadline:
        resp.update(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        if resp.peek_stdout():
            out.append(resp.read_stdout())
        if resp.peek_stderr():
            err.append(resp.read_stderr())
    timed_out = resp.is_open()
    status = None if timed_out else resp.read_channel(3)
    with interrupts.surfaced():  # websocket-client's close drops whatever it catches
        resp.close()
    if timed_out:
        err.append(f"\n[exec did not finish within {timeout_s:.0f} s]")
    return ExecResult(namespace, pod, tuple(argv), -1 if timed_out else _exit_code(status),
                      "".join(out), "".join(err), time.monotonic() - t0)


# --- pod state, start, logs and port-forward -------------------------------------------------
# Everything below serves the runtime and networking probes: each function returns evidence
# (frozen dataclasses) and waits only through conformance.waiting, so a wait that gives up says
# what it waited for and the last state it saw.

REQUEST_TIMEOUT = (5, 30)  # connect, read: for the plain reads and writes below
# What a wait on the cluster treats as "not yet": the API server or the network failing. Any
# other exception is a bug in the probe and surfaces at once instead of after the whole limit.
TRANSIENT = (k8s.ApiException, OSError, urllib3.exceptions.HTTPError)
# Waiting reasons that no amount of waiting cures: the kubelet cannot get the image. A pod in
# one of them would otherwise sit out its whole start timeout.
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
PULL_FIX = ("publish the suite's images to a registry the cluster pulls from "
            "(`nox -s publish-images -- --registry=REGISTRY/PREFIX`) and set images.registry_prefix "
            "in the profile to that REGISTRY/PREFIX; `pytest suites --list-images` prints every "
            "image and its mirrored name")


@dataclass(frozen=True)
class PullFailure:
    """A container whose image the kubelet could not get."""

    container: str
    image: str
    reason: str
    message: str


class ImageUnavailable(AssertionError):
    """A pod cannot start because its image cannot be pulled; raised at once by the pod waits.

    An AssertionError like WaitTimeout: the workload the test needs cannot run, and the
    message says which image, why, and how to make it obtainable.
    """

    def __init__(self, where: str, failures: tuple[PullFailure, ...]):
        self.where, self.failures = where, failures
        lines = [f"image {f.image} (container {f.container}): {f.reason}: {f.message}" for f in failures]
        super().__init__(f"pod {where} cannot pull its image:\n  " + "\n  ".join(lines) + f"\n  fix: {PULL_FIX}")


def pull_failures(pod: k8s.V1Pod) -> tuple[PullFailure, ...]:
    """The containers (init containers too) waiting on an image the kubelet failed to pull."""
    st = pod.status or k8s.V1PodStatus()
    out = []
    for cs in (st.init_container_statuses or []) + (st.container_statuses or []):
        waiting = cs.state.waiting if cs.state else None
        if waiting is not None and waiting.reason in PULL_FAILURES:
            out.append(PullFailure(cs.name, cs.image or "?", waiting.reason, waiting.message or ""))
    return tuple(out)


@dataclass(frozen=True)
class PodView:
    """A pod's state in the words a wait message or an assertion needs."""

    namespace: str
    name: str
    node: str | None
    phase: str | None
    ready: bool
    ips: tuple[str, ...]
    restarts: int
    why: str  # the reason it is not (yet) running and ready, from conditions and container states
    pull_failures: tuple[PullFailure, ...] = ()
    terminated: tuple[str, ...] = ()  # the containers whose current state is terminated

    def check_pull(self) -> PodView:
        """This view, or ImageUnavailable when a container's image cannot be pulled."""
        if self.pull_failures:
            raise ImageUnavailable(self.where, self.pull_failures)
        return self

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}" + (f" on {self.node}" if self.node else "")

    @classmethod
    def of(cls, pod: k8s.V1Pod) -> PodView:
        st = pod.status or k8s.V1PodStatus()
        conditions = {c.type: c for c in st.conditions or []}
        ready = conditions.get("Ready") is not None and conditions["Ready"].status == "True"
        reasons = [f"{c.type}={c.status} ({c.reason}: {c.message})" for c in conditions.values()
                   if c.status != "True" and (c.reason or c.message)]
        statuses = st.container_statuses or []
        for cs in statuses:
            state = cs.state
            if state and state.waiting:
                reasons.append(f"container {cs.name} waiting: {state.waiting.reason}: {state.waiting.message}")
            elif state and state.terminated:
                reasons.append(f"container {cs.name} terminated: {state.terminated.reason} "
                               f"(exit {state.terminated.exit_code})")
        return cls(namespace=pod.metadata.namespace, name=pod.metadata.name, node=pod.spec.node_name,
                   phase=st.phase, ready=ready, ips=tuple(p.ip for p in st.pod_ips or []),
                   restarts=sum(cs.restart_count for cs in statuses),
                   why="; ".join(reasons) or (st.reason or ""), pull_failures=pull_failures(pod),
                   terminated=tuple(cs.name for cs in statuses if cs.state and cs.state.terminated))


def view(api: k8s.ApiClient, namespace: str, name: str) -> PodView:
    return PodView.of(k8s.CoreV1Api(api).read_namespaced_pod(name, namespace, _request_timeout=REQUEST_TIMEOUT))


def wait_pod(api: k8s.ApiClient, namespace: str, name: str, until=lambda v: v.ready, state: str = "Ready",
             timeout: str | float = "pod_ready", interval: float = 0.5) -> PodView:
    """Poll the pod until `until(view)` holds; the timeout message names `state` and the last view.

    A container whose image cannot be pulled ends the wait at once (ImageUnavailable)."""
    return wait_for(f"pod {namespace}/{name} to be {state}", lambda: view(api, namespace, name).check_pull(),
                    until=until, timeout=timeout, interval=interval, retry_on=TRANSIENT)


@dataclass(frozen=True)
class PodStart:
    """How long a new pod took to be scheduled, running and ready, measured from the create call."""

    pod: PodView
    scheduled_s: float | None
    running_s: float | None
    ready_s: float

    @property
    def where(self) -> str:
        return self.pod.where


def start_pod(api: k8s.ApiClient, namespace: str, manifest: dict, timeout: str | float = "pod_ready",
              interval: float = 0.2) -> PodStart:
    """Create the pod and wait until it is Ready, noting when it was first seen scheduled and running.

    Times come from the client's clock (polled every `interval`), because the API server's
    condition times have a resolution of one second, too coarse for a pod that starts in one.
    """
    core = k8s.CoreV1Api(api)
    t0 = time.monotonic()
    created = core.create_namespaced_pod(namespace, manifest, _request_timeout=REQUEST_TIMEOUT)
    seen: dict[str, float] = {}

    def observe() -> PodView:
        v = view(api, namespace, created.metadata.name).check_pull()
        now = time.monotonic() - t0
        if v.node:
            seen.setdefault("scheduled", now)
        if v.phase == "Running":
            seen.setdefault("running", now)
        return v

    final = wait_for(f"pod {namespace}/{created.metadata.name} to be Ready", observe, until=lambda v: v.ready,
                     timeout=timeout, interval=interval, retry_on=TRANSIENT)
    ready = time.monotonic() - t0
    return PodStart(final, seen.get("scheduled"), seen.get("running", ready), ready)


def logs(api: k8s.ApiClient, namespace: str, name: str, container: str | None = None,
         previous: bool = False, tail_lines: int | None = None) -> str:
    return k8s.CoreV1Api(api).read_namespaced_pod_log(name, namespace, container=container, previous=previous,
                                                     tail_lines=tail_lines, _request_timeout=REQUEST_TIMEOUT)


@dataclass(frozen=True)
class PreviousRun:
    """The log of a restarted pod's previous run, read while the pod's status named it."""

    pod: PodView  # the status the read was made under
    log: str | None
    error: str | None  # why the kubelet could not give it


def previous_run(api: k8s.ApiClient, namespace: str, name: str, timeout: str | float = "container_restarted",
                 attempts: int = 3) -> PreviousRun:
    """Wait for the pod's first restart and read its previous run's log (`kubectl logs --previous`).

    The kubelet keeps one exited container per name: when a run exits it removes the run before
    it, yet until its next sync the status still shows the new run terminated with the removed
    one as its last state, and a read made then fails on any runtime. So the read waits for a
    status that has caught up (the container running again, or waiting out its back-off, whose
    last state is the newest exited run), and is made again if the status moved on during it.
    """
    for _ in range(attempts):
        settled = wait_pod(api, namespace, name, until=lambda v: v.restarts >= 1 and not v.terminated,
                           state="restarted, its status naming the run before", timeout=timeout, interval=0.2)
        try:
            return PreviousRun(settled, logs(api, namespace, name, previous=True), None)
        except k8s.ApiException as e:
            error = (e.body or str(e)).strip()
        after = view(api, namespace, name)
        if after.restarts == settled.restarts and not after.terminated:
            break
    return PreviousRun(settled, None, error)


@dataclass(frozen=True)
class ForwardedReply:
    """An HTTP exchange made through `kubectl port-forward`'s API (the pod's portforward subresource)."""

    namespace: str
    pod: str
    port: int
    request: str
    status: int | None
    body: str
    error: str | None
    elapsed_ms: float

    @property
    def where(self) -> str:
        return f"runner -> port-forward {self.namespace}/{self.pod}:{self.port}"


def http_through_port_forward(api: k8s.ApiClient, namespace: str, pod: str, port: int, path: str = "/hostname",
                              timeout_s: float = 10) -> ForwardedReply:
    """GET `path` from the pod's `port` through a port-forward stream, keeping status and body."""
    request = f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n"
    t0 = time.monotonic()
    raw, error = b"", None
    forward = None
    try:
        forward = portforward(k8s.CoreV1Api(api).connect_get_namespaced_pod_portforward, pod, namespace,
                              ports=str(port), _request_timeout=timeout_s)
        sock = forward.socket(port)
        sock.settimeout(timeout_s)
        sock.sendall(request.encode())
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
        sock.close()
        error = forward.error(port)
    except Exception as exc:  # noqa: BLE001 - the evidence carries the failure; the test asserts
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if forward is not None:
            forward.close()
    interrupts.check()  # the client turns a Ctrl-C into an ApiException, which the except above kept
    status, body = parse_http(raw.decode(errors="replace"))
    return ForwardedReply(namespace, pod, port, request.splitlines()[0], status, body, error,
                          (time.monotonic() - t0) * 1000)


def parse_http(raw: str) -> tuple[int | None, str]:
    """The status code and body of a raw HTTP/1.x response; (None, raw) when it is not one."""
    head, sep, body = raw.partition("\r\n\r\n")
    first = head.split("\r\n", 1)[0].split()
    if not sep or len(first) < 2 or not first[0].startswith("HTTP/") or not first[1].isdigit():
        return None, raw
    return int(first[1]), body
