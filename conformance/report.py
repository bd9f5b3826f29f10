"""Render Allure results as one HTML file that opens from disk, with Allure's npm package.

The package is installed once into the machine cache; rendering needs no network. The
generated page's analytics script is removed so that opening the report makes no outside request.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from conformance.cluster import paths

CONFIG = paths.REPO / "reports" / "allurerc.mjs"
NPM_TIMEOUT_S = 600
GENERATE_TIMEOUT_S = 300
# The report's analytics (a script from another host and its inline set-up) are dropped.
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\ssrc=\"https?://[^\"]*\"[^>]*>\s*</script>"
                            r"|<script>\s*window\.dataLayer.*?</script>", re.I | re.S)


def npm_package(name: str, version: str) -> Path:
    """npm package `name@version`, installed once into the machine cache; its node_modules folder."""
    prefix = paths.CACHE / "npm" / f"{name}-{version}"
    if not (prefix / "node_modules" / name).exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"{name}@{version}"],
                       check=True, timeout=NPM_TIMEOUT_S, capture_output=True)
    return prefix / "node_modules"


def allure_binary() -> Path:
    return npm_package("allure", "3") / ".bin" / "allure"


def render(results: Path, output: Path) -> Path:
    """Generate the single-file report from `results` into `output`; return its index.html."""
    if not results.is_dir() or not any(results.iterdir()):
        raise FileNotFoundError(f"no Allure results in {results}: run the suites first (they write there)")
    subprocess.run([str(allure_binary()), "generate", str(results), "--config", str(CONFIG), "--output", str(output)],
                   check=True, timeout=GENERATE_TIMEOUT_S, capture_output=True, cwd=paths.REPO)
    index = output / "index.html"
    index.write_text(_REMOTE_SCRIPT.sub("", index.read_text()))
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.report", description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=paths.REPO / "reports" / "allure-results")
    parser.add_argument("--output", type=Path, default=paths.REPO / "reports" / "html")
    args = parser.parse_args(argv)
    try:
        index = render(args.results, args.output)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(f"error: {exc}\n{detail.decode(errors='replace')[-2000:]}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
