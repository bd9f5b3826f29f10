"""Run a command inside a pod and keep the evidence: the primitive under in-cluster probes."""
from __future__ import annotations

import time
from dataclasses import dataclass

import yaml
from kubernetes import client as k8s
from kubernetes.stream import stream

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
    resp.close()
    if timed_out:
        err.append(f"\n[exec did not finish within {timeout_s:.0f} s]")
    return ExecResult(namespace, pod, tuple(argv), -1 if timed_out else _exit_code(status),
                      "".join(out), "".join(err), time.monotonic() - t0)
