"""The upgrade gate: compare the JSON summaries of a run before and a run after a change.

Same checks on both sides, keyed by test node: a promise that held before and no longer holds is
a regression; one that was checked before and is no longer checked (skipped or gone) is lost
coverage, which counts as a regression too, because a gate must not pass by skipping. The same
holds for the profile's claims (summaries of schema v2): a claimed component or capability that
was checked before and is unchecked, not selected or no longer claimed after is lost coverage.
Measured values are set side by side with their budgets. Exit 0 when nothing regressed, 1 when something
did, 2 when a summary cannot be read.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from conformance.summary import READABLE_SCHEMAS

HELD = ("passed", "waived")
CHECKED = ("passed", "waived", "failed", "error")  # promise outcomes and claim states alike


@dataclass(frozen=True)
class Change:
    """One test node whose outcome, or one claim whose state, differs between the two runs."""

    nodeid: str  # the test node, or `claim <id>`
    promise: str
    before: str
    after: str
    reason: str | None

    @property
    def regressed(self) -> bool:
        return (self.before in HELD and self.after not in HELD) or (
            self.before in CHECKED and self.after not in CHECKED)


@dataclass(frozen=True)
class Comparison:
    changes: tuple[Change, ...]
    measurements: tuple[tuple[str, str, float | None, float | None, float | None], ...]

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.regressed)


def load(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read summary {path}: {exc}; give the summary.json a run wrote "
                         "(pytest suites --reports=DIR)") from None
    if doc.get("schema") not in READABLE_SCHEMAS:
        raise ValueError(f"{path} is not a platform-conformance summary (schema {doc.get('schema')!r}, "
                         f"expected one of {', '.join(READABLE_SCHEMAS)})")
    return doc


def compare(before: dict, after: dict) -> Comparison:
    old = {p["nodeid"]: p for p in before["promises"]}
    new = {p["nodeid"]: p for p in after["promises"]}
    changes = []
    for nodeid in sorted(old.keys() | new.keys()):
        a, b = old.get(nodeid), new.get(nodeid)
        was, now = (a or {}).get("outcome", "absent"), (b or {}).get("outcome", "absent")
        if was != now:
            changes.append(Change(nodeid, (b or a)["promise"], was, now, (b or {}).get("reason")))
    if "claims" in before and "claims" in after:  # a v1 summary has no claims to compare
        old_claims = {c["id"]: c for c in before["claims"]}
        new_claims = {c["id"]: c for c in after["claims"]}
        for cid in sorted(old_claims.keys() | new_claims.keys()):
            a, b = old_claims.get(cid), new_claims.get(cid)
            was, now = (a or {}).get("state", "absent"), (b or {}).get("state", "absent")
            if was != now:
                changes.append(Change(f"claim {cid}", cid, was, now, (b or {}).get("why")))
    values = {}
    for side, doc in (("before", before), ("after", after)):
        for p in doc["promises"]:
            for m in p.get("measurements", []):
                row = values.setdefault((p["promise"], m["name"]), {"budget": m.get("budget")})
                row[side] = m["value"]
    measurements = tuple((promise, name, row.get("before"), row.get("after"), row.get("budget"))
                         for (promise, name), row in sorted(values.items()))
    return Comparison(tuple(changes), measurements)


def render(result: Comparison) -> str:
    lines = []
    for c in result.changes:
        mark = "REGRESSED" if c.regressed else "changed"
        lines.append(f"{mark:9}  {c.promise}  {c.before} -> {c.after}  ({c.nodeid})"
                     + (f"\n           {c.reason}" if c.reason and c.regressed else ""))
    if not result.changes:
        lines.append("no promise changed its outcome")
    for promise, name, was, now, budget in result.measurements:
        limit = f" (budget {budget:g})" if budget is not None else ""
        lines.append(f"measured   {promise}: {name}: {_num(was)} -> {_num(now)}{limit}")
    lines.append(f"verdict: {len(result.regressions)} regression(s)")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.compare", description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="summary.json of the run before the change")
    parser.add_argument("after", type=Path, help="summary.json of the run after it")
    args = parser.parse_args(argv)
    try:
        result = compare(load(args.before), load(args.after))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(result))
    return 1 if result.regressions else 0


if __name__ == "__main__":
    sys.exit(main())
