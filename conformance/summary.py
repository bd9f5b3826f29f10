"""The run's verdict: a JSON summary per promise, a table per component, and the exit code.

Exit codes, the same in the JSON's `verdict`, in this order of precedence:
  2  the suite could not run (bad input, unreachable cluster, broken collection, interrupted);
  1  the platform failed at least one promise;
  2  no promise was checked at all: a run never turns green by skipping everything;
  3  incomplete: a claimed component or capability had no promise run (conformance.claims), so
     nothing stands behind it;
  0  every claim the run selected was checked and passed (waived failures allowed).
A run narrowed by `-m`, `-k`, named paths or read-only mode is judged on what it selected;
the summary and the verdict's reason say how it was narrowed.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from conformance import claims as claiming
from conformance.components import COMPONENTS

PASSED, FAILED, COULD_NOT_RUN, INCOMPLETE = 0, 1, 2, 3
OUTCOMES = ("passed", "failed", "error", "waived", "skipped")
# v2 added `claims`, `narrowed`, each promise's `covers` and `narrowed`, and the verdict `incomplete`.
SCHEMA = "platform-conformance/summary/v2"
READABLE_SCHEMAS = ("platform-conformance/summary/v1", SCHEMA)


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
    covers: tuple[str, ...] = ()  # the capability claims it checks (conformance.claims)
    narrowed: str | None = None  # why the run chose not to select it (a read-only run)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["measurements"] = [m.to_dict() for m in self.measurements]
        d["duration_s"] = round(self.duration_s, 3)
        d["covers"] = list(self.covers)
        return d


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    word: str  # "pass", "fail", "could-not-run", "incomplete"
    reason: str

    @classmethod
    def interrupted(cls, reason: str) -> Verdict:
        """A run stopped before its end (Ctrl-C, SIGTERM, a lost lease): exit 2 and the word
        `interrupted`, whatever its promises did, because what ran is not all it would have."""
        return cls(COULD_NOT_RUN, "interrupted", reason)


def verdict(results: Iterable[PromiseResult], could_not_run: str | None = None,
            claims: Sequence[claiming.Status] = (), narrowed_by: Sequence[str] = ()) -> Verdict:
    """The verdict from every promise check and every claim's status (conformance.claims)."""
    results = list(results)
    count = Counter(r.outcome for r in results)
    if could_not_run:
        return Verdict(COULD_NOT_RUN, "could-not-run", could_not_run)
    unchecked = [s.claim.id for s in claims if s.state == claiming.UNCHECKED]
    also = f"; {len(unchecked)} claim(s) unchecked: {', '.join(unchecked)}" if unchecked else ""
    narrowed = _narrowed(claims, narrowed_by)
    failing = [r.promise for r in results if r.outcome in ("failed", "error")]
    if failing:
        shown = ", ".join(dict.fromkeys(failing))
        return Verdict(FAILED, "fail", f"{len(failing)} promise check(s) failed: {shown}{also}{narrowed}")
    checked = count["passed"] + count["waived"]
    if not checked:
        return Verdict(COULD_NOT_RUN, "could-not-run",
                       f"no promise was checked ({count['skipped']} skipped); a run cannot pass by skipping"
                       f"{also}{narrowed}")
    if unchecked:
        return Verdict(INCOMPLETE, "incomplete", f"{len(unchecked)} claim(s) unchecked, no promise of theirs ran: "
                       f"{', '.join(unchecked)} ({checked} promise check(s) passed){narrowed}")
    return Verdict(PASSED, "pass", f"{checked} promise check(s) passed ({count['waived']} waived, "
                   f"{count['skipped']} skipped){narrowed}")


def narrowed_by(results: Iterable[PromiseResult], selection: Sequence[str]) -> list[str]:
    """Everything that narrowed the run: the command line's selection, then why checks were
    left out (a read-only run)."""
    return list(dict.fromkeys([*selection, *(r.narrowed for r in results if r.narrowed)]))


def narrowing(claims: Sequence[claiming.Status], narrowed_by: Sequence[str]) -> dict | None:
    """How the run was narrowed and which claims it left out; None for a run of everything."""
    left_out = [s.claim.id for s in claims if s.state == claiming.NOT_SELECTED]
    return {"by": list(narrowed_by), "not_selected": left_out} if narrowed_by or left_out else None


def _narrowed(claims: Sequence[claiming.Status], narrowed_by: Sequence[str]) -> str:
    n = narrowing(claims, narrowed_by)
    if n is None:
        return ""
    left = f": not selected {', '.join(n['not_selected'])}" if n["not_selected"] else ""
    return f"; narrowed by {', '.join(n['by'])}{left}"


def document(results: Iterable[PromiseResult], outcome: Verdict, claims: Sequence[claiming.Status] = (),
             narrowed_by: Sequence[str] = (), **run: object) -> dict:
    """The JSON summary: run facts (id, profile, mode, times, ...), verdict, how the run was
    narrowed, every claim's status, and every result."""
    results = list(results)
    return {
        "schema": SCHEMA,
        "run": run,
        "verdict": {"exit_code": outcome.exit_code, "word": outcome.word, "reason": outcome.reason},
        "narrowed": narrowing(claims, narrowed_by),
        "counts": {o: sum(r.outcome == o for r in results) for o in OUTCOMES},
        "claims": [s.to_dict() for s in claims],
        "promises": [r.to_dict() for r in results],
    }


def write(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


def table(results: Iterable[PromiseResult], claims: Sequence[claiming.Status] = ()) -> str:
    """A per-component table, then the failing and waived promises, every measurement, and
    the claims with how many of their promises ran."""
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
    if claims:
        lines += ["", "claims:", claiming.render(claims)]
    return "\n".join(lines)


def write_allure_environment(results_dir: Path, doc: dict) -> Path:
    """The run's facts, verdict and every claim's state as the Allure results'
    environment.properties, which the report shows on its overview."""
    run, verdict_ = doc["run"], doc["verdict"]
    pairs = [("profile", f"{run.get('profile')} ({run.get('profile_source')})"), ("mode", run.get("mode")),
             ("run id", run.get("run_id")), ("verdict", f"{verdict_['word']} (exit {verdict_['exit_code']}): "
                                                       f"{verdict_['reason']}")]
    if doc.get("narrowed"):
        pairs.append(("narrowed by", ", ".join(doc["narrowed"]["by"])))
    for c in doc.get("claims", []):
        n = c["promises"]
        pairs.append((f"claim {c['id']}", f"{c['state']}: {n['ran']} ran, {n['passed']} passed, {n['failed']} failed, "
                                          f"{n['skipped']} skipped" + (f"; {c['why']}" if c["why"] else "")))
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "environment.properties"
    path.write_text("".join(f"{_escape(k, True)}={_escape(str(v))}\n" for k, v in pairs))
    return path


def _escape(text: str, key: bool = False) -> str:
    """Java properties escaping, which Allure reads."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace(" ", "\\ ").replace(":", "\\:").replace("=", "\\=") if key else text
