"""The local API server's audit log, read as the judge of what an identity really sent."""
from __future__ import annotations

import datetime as dt
import json
from typing import Iterable

from conformance import run as runs
from conformance.cluster import paths

READ_VERBS = frozenset({"get", "list", "watch"})
# Through the WebSocket client, exec, attach and port-forward are logged as `get` on the pod's
# subresource, and a proxy request as the verb of the proxied method: each opens a way into a
# workload or a node, so none of them is a read whatever its verb says.
STREAM_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})


def audit_lines():
    for path in sorted(paths.AUDIT_LOG.parent.glob("audit*.log")):
        with path.open() as f:
            yield from f


def audit_since(since: dt.datetime, user: str) -> list[dict]:
    found = []
    for line in audit_lines():
        if f'"username":"{user}"' not in line:
            continue
        event = json.loads(line)
        if runs.parse_time(event["requestReceivedTimestamp"]) >= since:
            found.append(event)
    return found


def describe(event: dict) -> str:
    """One request as `verb resource/subresource namespace/name -> code`, for a failure message."""
    ref = event.get("objectRef") or {}
    what = ref.get("resource") or event.get("requestURI", "?")
    if ref.get("subresource"):
        what += f"/{ref['subresource']}"
    where = "/".join(p for p in (ref.get("namespace"), ref.get("name")) if p)
    code = (event.get("responseStatus") or {}).get("code")
    return f"{event.get('verb')} {what}" + (f" {where}" if where else "") + (f" -> {code}" if code else "")


def not_read_only(events: Iterable[dict]) -> list[str]:
    """Every request that is not a plain read: a verb other than get, list or watch, or any
    request on exec, attach, portforward or proxy. Refused requests count too: the identity
    asked, and a read-only run must not ask."""
    return sorted({describe(e) for e in events
                   if e.get("verb") not in READ_VERBS
                   or (e.get("objectRef") or {}).get("subresource") in STREAM_SUBRESOURCES})
