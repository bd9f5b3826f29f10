"""Evidence: secret redaction, secret digests, and the diagnosis gathered when a promise fails.

Reports are read by people who may not see the platform's secrets, so everything that goes into
one passes through `redact` (objects) or `redact_text` (logs, describe output). Tests that need
to compare secrets compare `digest`s, whose repr shows a keyed hash, never the value, so not
even an assertion message can leak one.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Iterable

import yaml
from kubernetes import client as k8s

from conformance.components import Component

REDACTED = "<redacted>"
# Keys whose string values are secrets wherever they appear (case-insensitive, end of the key).
# References to secrets (`secretName`, `secretKeyRef`) end otherwise and stay readable.
SECRET_KEY = re.compile(
    r"(?i)(password|passwd|passphrase|token|secret|credentials?|api[-_]?key|access[-_]?key|"
    r"private[-_]?key|[-_.]key|client-key-data)$")
# Values that are secrets whatever their key, with what replaces them: PEM private keys, JWTs,
# bearer tokens, Vault tokens, AWS-style access keys, and `name: value` or `name=value` pairs
# whose name says secret (the name is kept).
SECRET_TEXT = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\g<1>" + REDACTED),
    (re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}"), REDACTED),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), REDACTED),
    (re.compile(r"(?i)\b([\w.-]*(password|passwd|token|secret|api[-_]?key|access[-_]?key|secret[-_]?key)"
                r"[\w.-]*\"?\s*[:=]\s*\"?)([^\s\"',}]{3,})"), r"\g<1>" + REDACTED),
)
_DIGEST_KEY = secrets.token_bytes(32)


def redact_text(text: str) -> str:
    """`text` with every secret-looking value replaced."""
    for pattern, replacement in SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def redact(obj: Any) -> Any:
    """A copy of a Kubernetes object (or any JSON-like value) without secret values.

    A Secret keeps its keys and loses its values (data, stringData, and the last-applied
    annotation that would repeat them); elsewhere a string under a secret-looking key is
    replaced, and every other string passes through `redact_text`.
    """
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact(v) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj)
    if not isinstance(obj, dict):
        return obj
    out = {}
    is_secret = obj.get("kind") == "Secret"
    # An environment variable (`name: DB_PASSWORD, value: ...`) says by its name what its value is.
    secret_pair = isinstance(obj.get("name"), str) and bool(SECRET_KEY.search(obj["name"]))
    for key, value in obj.items():
        if is_secret and key in ("data", "stringData") and isinstance(value, dict):
            out[key] = {k: REDACTED for k in value}
        elif is_secret and key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k != "managedFields"}
            notes = {k: v for k, v in (meta.get("annotations") or {}).items()
                     if k != "kubectl.kubernetes.io/last-applied-configuration"}
            out[key] = redact({**meta, "annotations": notes} if "annotations" in meta else meta)
        elif isinstance(value, (str, bytes)) and (SECRET_KEY.search(str(key)) or
                                                   (secret_pair and key == "value")):
            out[key] = REDACTED
        else:
            out[key] = redact(value)
    return out


@dataclass(frozen=True)
class SecretDigest:
    """A keyed hash of a secret value: equal values give equal digests within one process,
    and the repr shows neither the value nor a hash that could be looked up elsewhere."""

    hexdigest: str
    length: int

    def __repr__(self) -> str:
        return f"<secret hmac-sha256:{self.hexdigest[:16]} len={self.length}>"

    __str__ = __repr__


def digest(value: str | bytes) -> SecretDigest:
    raw = value.encode() if isinstance(value, str) else value
    return SecretDigest(hmac.new(_DIGEST_KEY, raw, hashlib.sha256).hexdigest(), len(raw))


def secret_digests(secret: dict) -> dict[str, SecretDigest]:
    """Digests of a Secret's values by key: `data` is decoded from base64, `stringData` is not."""
    out = {}
    for key, value in ((secret.get("data") or {})).items():
        try:
            out[key] = digest(base64.b64decode(value or "", validate=True))
        except (binascii.Error, ValueError):
            out[key] = digest(value)
    for key, value in (secret.get("stringData") or {}).items():
        out[key] = digest(value)
    return out


# --- diagnosis of a failure ------------------------------------------------------------------

@dataclass(frozen=True)
class Section:
    title: str
    body: str


@dataclass(frozen=True)
class Diagnosis:
    """What the cluster looked like when a promise failed, redacted, before cleanup."""

    subject: str
    sections: tuple[Section, ...]

    def text(self) -> str:
        parts = [f"diagnosis of {self.subject}"]
        for s in self.sections:
            parts.append(f"== {s.title} ==\n{s.body.rstrip()}")
        return "\n\n".join(parts) + "\n"

    def to_dict(self) -> dict:
        return {"subject": self.subject, "sections": [{"title": s.title, "body": s.body} for s in self.sections]}


LOG_LINES = 50
REQUEST_TIMEOUT = (5, 15)


def diagnose(api: k8s.ApiClient, subject: str, namespaces: Iterable[str],
             component: Component | None = None, component_namespace: str | None = None,
             log_lines: int = LOG_LINES) -> Diagnosis:
    """Collect events, not-ready pods (described, with log tails) and the status of the
    component's own objects. In the test's namespaces everything is shown; in the component's
    namespace only warnings and pods that are not ready. Each part that cannot be collected
    says so and the others still come."""
    core = k8s.CoreV1Api(api)
    sections: list[Section] = []
    spaces = [(ns, False) for ns in dict.fromkeys(namespaces)]
    if component_namespace and component_namespace not in dict(spaces):
        spaces.append((component_namespace, True))
    for ns, only_trouble in spaces:
        # An empty event list is itself evidence ("nothing complained there"), so it is kept.
        sections.append(_collect(f"events in {ns}" + (" (warnings)" if only_trouble else ""),
                                 lambda ns=ns, t=only_trouble: _events(core, ns, t) or "(none)"))
        sections += _collect_pods(core, ns, log_lines)
    for kind in component.kinds if component else ():
        where = [None] if not kind.namespaced else [ns for ns, _ in spaces]
        for ns in where:
            title = f"{kind.kind} objects" + (f" in {ns}" if ns else "")
            sections.append(_collect(title, lambda kind=kind, ns=ns: _custom_status(api, kind, ns)))
    return Diagnosis(subject, tuple(s for s in sections if s.body.strip()))


def _collect(title: str, gather) -> Section:
    try:
        return Section(title, redact_text(gather()))
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not fail the report
        return Section(title, f"could not collect: {type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _events(core: k8s.CoreV1Api, ns: str, warnings_only: bool) -> str:
    events = core.list_namespaced_event(
        ns, field_selector="type=Warning" if warnings_only else None, _request_timeout=REQUEST_TIMEOUT).items
    events.sort(key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp))
    return "\n".join(
        f"{e.last_timestamp or e.event_time} {e.type} {e.reason} "
        f"{e.involved_object.kind}/{e.involved_object.name} x{e.count or 1}: {(e.message or '').strip()}"
        for e in events[-60:])


def not_ready(pod: k8s.V1Pod) -> bool:
    if pod.status is None or pod.status.phase in ("Succeeded",):
        return False
    ready = next((c for c in pod.status.conditions or [] if c.type == "Ready"), None)
    return ready is None or ready.status != "True"


def describe_pod(pod: k8s.V1Pod) -> str:
    """The parts of `kubectl describe pod` that explain why a pod is not ready."""
    st = pod.status
    lines = [f"pod {pod.metadata.namespace}/{pod.metadata.name} on {pod.spec.node_name or '(unscheduled)'}: "
             f"phase {st.phase}" + (f", {st.reason}: {st.message}" if st.reason else "")]
    for c in st.conditions or []:
        lines.append(f"  condition {c.type}={c.status}" + (f" ({c.reason}: {c.message})" if c.reason else ""))
    for cs in (st.init_container_statuses or []) + (st.container_statuses or []):
        state = cs.state
        now = ("running" if state.running else
               f"waiting ({state.waiting.reason}: {state.waiting.message})" if state.waiting else
               f"terminated ({state.terminated.reason}, exit {state.terminated.exit_code})")
        last = cs.last_state.terminated if cs.last_state else None
        before = f"; last exit {last.exit_code} ({last.reason})" if last else ""
        lines.append(f"  container {cs.name} ({cs.image}): {now}, ready={cs.ready}, "
                     f"restarts={cs.restart_count}{before}")
    return "\n".join(lines)


def _collect_pods(core: k8s.CoreV1Api, ns: str, log_lines: int) -> list[Section]:
    try:
        pods = [p for p in core.list_namespaced_pod(ns, _request_timeout=REQUEST_TIMEOUT).items if not_ready(p)]
    except Exception as exc:  # noqa: BLE001
        return [Section(f"pods in {ns}", f"could not collect: {type(exc).__name__}: {_first_line(exc)}")]
    sections = []
    for pod in pods[:10]:
        name = pod.metadata.name
        sections.append(Section(f"not-ready pod {ns}/{name}", describe_pod(pod)))
        for cs in pod.status.container_statuses or []:
            for previous in ([False, True] if cs.restart_count else [False]):
                label = "previous log" if previous else "log"
                sections.append(_collect(
                    f"{label} of {ns}/{name} container {cs.name} (last {log_lines} lines)",
                    lambda name=name, c=cs.name, p=previous: core.read_namespaced_pod_log(
                        name, ns, container=c, tail_lines=log_lines, previous=p,
                        _request_timeout=REQUEST_TIMEOUT)))
    return sections


def _custom_status(api: k8s.ApiClient, kind, ns: str | None) -> str:
    custom = k8s.CustomObjectsApi(api)
    if ns:
        listed = custom.list_namespaced_custom_object(kind.group, kind.version, ns, kind.plural,
                                                      _request_timeout=REQUEST_TIMEOUT)
    else:
        listed = custom.list_cluster_custom_object(kind.group, kind.version, kind.plural,
                                                   _request_timeout=REQUEST_TIMEOUT)
    items = listed.get("items") or []
    return "\n".join(
        yaml.safe_dump({"name": i["metadata"]["name"], "status": redact(i.get("status") or {})},
                       sort_keys=False, width=120) for i in items[:30])


def to_json(value: Any) -> str:
    """JSON of a redacted value, for attachments."""
    return json.dumps(redact(value), indent=2, sort_keys=True, default=str)
