"""The nightly history: one summary per run in a folder, and a page that plots each measured value.

A run started with `--history DIR` keeps a copy of its summary.json there. The page shows, for
every measurement a promise reports (DNS p95, time to an address, to a certificate, ...), its
values over time beside its budget, and flags a regression: a value worse than 1.5 times the
median of the previous 7 runs, or past its budget. The page is one HTML file with inline SVG, no
script and no outside request, so it opens from disk and reads the same in any browser.
"""
from __future__ import annotations

import argparse
import html
import json
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

WINDOW = 7       # previous runs a value is compared with
FACTOR = 1.5     # worse than this many times their median is a regression


@dataclass(frozen=True)
class Point:
    """One measured value of one run."""

    run_id: str
    started: str
    value: float
    unit: str
    budget: float | None
    outcome: str


@dataclass(frozen=True)
class Flag:
    """A value the page marks, and why."""

    point: Point
    why: str


def keep(summary: Path, history: Path) -> Path:
    """Copy a run's summary into the history folder, named so that names sort by start time."""
    doc = json.loads(summary.read_text())
    run = doc.get("run") or {}
    stamp = str(run.get("started", "")).replace(":", "").replace("+0000", "Z")
    history.mkdir(parents=True, exist_ok=True)
    dest = history / f"{stamp or 'unknown'}_{run.get('run_id', 'run')}.json"
    shutil.copyfile(summary, dest)
    return dest


def load(history: Path) -> list[dict]:
    """Every summary in the folder, oldest first; a file that is not a summary is named."""
    if not history.is_dir():
        raise FileNotFoundError(f"no history folder {history}: runs started with --history={history} fill it")
    docs = []
    for f in sorted(history.glob("*.json")):
        try:
            doc = json.loads(f.read_text())
            doc["run"]["started"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{f} is not a run summary ({exc}); move it out of the history folder") from None
        docs.append(doc)
    return sorted(docs, key=lambda d: d["run"]["started"])


def series(docs: list[dict]) -> dict[str, list[Point]]:
    """Each measurement over time, keyed `promise · name`, in run order."""
    out: dict[str, list[Point]] = {}
    for doc in docs:
        run = doc["run"]
        for result in doc.get("promises", ()):
            for m in result.get("measurements", ()):
                out.setdefault(f"{result['promise']} · {m['name']}", []).append(
                    Point(run.get("run_id", "?"), run["started"], float(m["value"]), m.get("unit", ""),
                          m.get("budget"), result.get("outcome", "")))
    return dict(sorted(out.items()))


def flags(points: list[Point], window: int = WINDOW, factor: float = FACTOR) -> list[Flag]:
    """The regressions in one series: past its budget, or worse than `factor` times the median
    of the `window` runs before it (smaller is better for every measured value)."""
    found = []
    for i, p in enumerate(points):
        if p.budget is not None and p.value > p.budget:
            found.append(Flag(p, f"{p.value:g} {p.unit} is past its budget of {p.budget:g} {p.unit}"))
            continue
        before = [q.value for q in points[max(0, i - window):i]]
        if len(before) >= 3:
            median = statistics.median(before)
            if median > 0 and p.value > factor * median:
                found.append(Flag(p, f"{p.value:g} {p.unit} is worse than {factor:g} times the median "
                                     f"({median:g} {p.unit}) of the {len(before)} runs before it"))
    return found


def _chart(points: list[Point], marked: set[int], width: int = 640, height: int = 160) -> str:
    """A line chart of the values, the budget as a dashed line, flagged points in red."""
    values = [p.value for p in points]
    budget = next((p.budget for p in reversed(points) if p.budget is not None), None)
    top = max(values + ([budget] if budget is not None else [])) * 1.1 or 1.0
    pad = 30

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (i / max(1, len(points) - 1))
        return x, height - pad - (height - 2 * pad) * (v / top)

    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(values)))
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img">',
             f'<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="{line}"/>']
    if budget is not None:
        y = xy(0, budget)[1]
        parts.append(f'<line class="budget" x1="{pad}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#888" stroke-dasharray="6 4"/><text x="{width - pad}" y="{y - 4:.1f}" '
                     f'text-anchor="end" font-size="11">budget {budget:g}</text>')
    for i, v in enumerate(values):
        x, y = xy(i, v)
        colour = "#d32f2f" if i in marked else "#2a6fdb"
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                     f'<title>{html.escape(points[i].started)}: {v:g} {html.escape(points[i].unit)}</title></circle>')
    parts.append(f'<text x="{pad}" y="{height - 8}" font-size="11">{html.escape(points[0].started[:16])}</text>'
                 f'<text x="{width - pad}" y="{height - 8}" font-size="11" text-anchor="end">'
                 f'{html.escape(points[-1].started[:16])}</text></svg>')
    return "".join(parts)


def page(docs: list[dict]) -> str:
    """The history page: a regressions table, then one chart per measured series."""
    all_series = series(docs)
    blocks, regressions = [], []
    for name, points in all_series.items():
        found = flags(points)
        marked = {points.index(f.point) for f in found}
        regressions += [(name, f) for f in found]
        budget = next((p.budget for p in reversed(points) if p.budget is not None), None)
        last = points[-1]
        blocks.append(
            f'<section class="series" data-series="{html.escape(name)}"><h2>{html.escape(name)}</h2>'
            f'<p>last {last.value:g} {html.escape(last.unit)}; budget '
            f'{"none" if budget is None else f"{budget:g} {html.escape(last.unit)}"}; {len(points)} runs</p>'
            f'{_chart(points, marked)}</section>')
    rows = "".join(f'<tr class="regression"><td>{html.escape(f.point.started)}</td><td>{html.escape(f.point.run_id)}'
                   f'</td><td>{html.escape(name)}</td><td>{html.escape(f.why)}</td></tr>' for name, f in regressions)
    latest = regressions and any(f.point.run_id == docs[-1]["run"].get("run_id") for _, f in regressions)
    verdicts = "".join(f'<li>{html.escape(d["run"]["started"])} {html.escape(d["run"].get("run_id", ""))}: '
                       f'{html.escape(d.get("verdict", {}).get("word", "?"))}</li>' for d in docs[-10:])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>platform-conformance history</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} .regression td{{color:#b71c1c}}</style></head>
<body><h1>platform-conformance history</h1>
<p id="scope">{len(docs)} runs, {len(all_series)} measured series; a regression is a value past its budget
or worse than {FACTOR:g} times the median of the {WINDOW} runs before it.</p>
<p id="latest">{"the latest run has a regression" if latest else "the latest run has no regression"}</p>
<h2>Regressions</h2>
<table id="regressions"><tr><th>run started</th><th>run</th><th>series</th><th>why</th></tr>{rows or
'<tr><td colspan="4">none</td></tr>'}</table>
<h2>Latest verdicts</h2><ul id="verdicts">{verdicts}</ul>
{"".join(blocks)}
</body></html>
"""


def render(history: Path, output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    docs = load(history)
    if not docs:
        raise FileNotFoundError(f"{history} holds no run summaries yet")
    output.write_text(page(docs))
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.history", description=__doc__.split("\n")[0])
    parser.add_argument("history", type=Path, help="the folder runs started with --history=DIR keep their summaries in")
    parser.add_argument("--output", type=Path, default=Path("reports") / "history.html")
    args = parser.parse_args(argv)
    try:
        out = render(args.history, args.output)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"history: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
