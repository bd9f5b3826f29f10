"""The local API server's audit log, read as the judge of what an identity really sent."""
from __future__ import annotations

import datetime as dt
import json

from conformance import run as runs
from conformance.cluster import paths


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
