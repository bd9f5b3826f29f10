"""The run's verdict: a JSON summary per promise, a table per component, and the exit code.

Exit codes, the same in the JSON's `verdict`:
  0  every claimed promise that was checked passed (waived failures allowed);
  1  the platform failed at least one promise;
  2  the suite could not run (bad input, unreachable cluster, broken collection, interrupted),
     or no promise was checked at all: a run never turns green by skipping everything.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from conformance.components import COMPONENTS

PASSED, FAILED, COULD_NOT_RUN = 0, 1, 2
OUTCOMES = ("passed", "failed", "error", "waived", "skipped")
SCHEMA = "platform-conformance/summary/v1"


@dataclass(frozen=True)
class Measurement:
    """A value a test measured, with the budget it is held to (None when there is none)."""

    name: str
    value: float
    unit: str
    budget: float | None = None
    budget_name: str | None = None

    @property
    def within_budget(self) -> bool | None:
        return None if self.budget is None else self.value <= self.budget

    def to_dict(self) -> dict:
        return {**asdict(self), "within_budget": self.within_budget}

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        return cls(d["name"], d["value"], d["unit"], d.get("budget"), d.get("budget_name"))

    def __str__(self) -> str:
        budget = f" (budget {self.budget:g} {self.unit} from {self.budget_name})" if self.budget is not None else ""
        return f"{self.name} = {self.value:g} {self.unit}{budget}"


@dataclass(frozen=True)
class PromiseResult:
    """The outcome of one test node of a promise."""

    nodeid: str
    component: str
    promise: str
    must: str
    outcome: str  # one of OUTCOMES
    duration_s: float
    reason: str | None = None  # skip or waiver reason, or the first line of the failure
    measurements: tuple[Measurement, ...] = field(default=())
    diagnosis: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["measurements"] = [m.to_dict() for m in self.measurements]
        d["duration_s"] = round(self.duration_s, 3)
        return d


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    word: str  # "pass", "fail", "could-not-run"
    reason: str

    @classmethod
    def interrupted(cls, reason: str) -> Verdict:
        """A run stopped before its end (Ctrl-C, SIGTERM, a lost lease): exit 2 and the word
        `interrupted`, whatever its promises did, because what ran is not all it would have."""
        return cls(COULD_NOT_RUN, "interrupted", reason)


def verdict(results: Iterable[PromiseResult], could_not_run: str | None = None) -> Verdict:
    results = list(results)
    count = Counter(r.outcome for r in results)
    if could_not_run:
        return Verdict(COULD_NOT_RUN, "could-not-run", could_not_run)
    failing = [r.promise for r in results if r.outcome in ("failed", "error")]
    if failing:
        shown = ", ".join(dict.fromkeys(failing))
        return Verdict(FAILED, "fail", f"{len(failing)} promise check(s) failed: {shown}")
    checked = count["passed"] + count["waived"]
    if not checked:
        return Verdict(COULD_NOT_RUN, "could-not-run",
                       f"no promise was checked ({count['skipped']} skipped); a run cannot pass by skipping")
    return Verdict(PASSED, "pass", f"{checked} promise check(s) passed ({count['waived']} waived, "
                   f"{count['skipped']} skipped)")


def document(results: Iterable[PromiseResult], outcome: Verdict, **run: object) -> dict:
    """The JSON summary: run facts (id, profile, mode, times, ...), verdict, and every result."""
    results = list(results)
    return {
        "schema": SCHEMA,
        "run": run,
        "verdict": {"exit_code": outcome.exit_code, "word": outcome.word, "reason": outcome.reason},
        "counts": {o: sum(r.outcome == o for r in results) for o in OUTCOMES},
        "promises": [r.to_dict() for r in results],
    }


def write(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


def table(results: Iterable[PromiseResult]) -> str:
    """A per-component table, then the failing and waived promises and every measurement."""
    by_component: dict[str, list[PromiseResult]] = defaultdict(list)
    for r in results:
        by_component[r.component].append(r)
    order = [c for c in COMPONENTS if c in by_component] + sorted(set(by_component) - set(COMPONENTS))
    head = ("component",) + OUTCOMES + ("time",)
    rows = [head]
    for comp in order:
        rs = by_component[comp]
        rows.append((comp, *(str(sum(r.outcome == o for r in rs)) for o in OUTCOMES),
                     f"{sum(r.duration_s for r in rs):.1f}s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    everything = [r for comp in order for r in by_component[comp]]
    for title, wanted in (("failed", ("failed", "error")), ("waived", ("waived",))):
        picked = [r for r in everything if r.outcome in wanted]
        if picked:
            lines.append(f"\n{title}:")
            lines += [f"  {r.promise}  {r.nodeid}" + (f"\n      {r.reason}" if r.reason else "") for r in picked]
    measured = [(r, m) for r in everything for m in r.measurements]
    if measured:
        lines.append("\nmeasured:")
        lines += [f"  {r.promise}: {m}" + ("" if m.within_budget is not False else "  OVER BUDGET")
                  for r, m in measured]
    return "\n".join(lines)
