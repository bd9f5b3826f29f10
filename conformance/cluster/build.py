"""Build the cluster's upstream programs from their pinned Go modules, into the machine cache.

Each program gets a small build module of its own that requires the pinned upstream module
(and repeats what its replace directives point at), so `go build` resolves everything through
the module proxy. Output is keyed by name and version; a cached program is never rebuilt.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from conformance.cluster import paths
from conformance.cluster.errors import HarnessError
from conformance.cluster.progress import BuildProgress, read_last_cold, write_record

GO_DOWNLOAD_TIMEOUT_S = 1800
GO_BUILD_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Program:
    """One pinned Go module and the binaries built from it."""

    name: str
    module: str
    version: str
    sum: str
    packages: dict[str, str]
    require: tuple[str, ...] = ()
    staging: str = ""
    tags: tuple[str, ...] = ()
    version_ldflags: bool = False

    @property
    def bindir(self) -> Path:
        return paths.CACHE / "bin" / f"{self.name}-{self.version}"

    def binary(self, name: str) -> Path:
        return self.bindir / name

    @property
    def record(self) -> Path:
        """Beside the binaries, for every version: how long the last (cold) build took."""
        return paths.CACHE / "bin" / f"{self.name}.build.json"

    @property
    def built(self) -> bool:
        return all(self.binary(b).exists() for b in self.packages)

    def source_dir(self) -> Path:
        """The module's files in the Go module cache (downloaded by the build)."""
        return Path(go_env("GOMODCACHE")) / f"{_escape(self.module)}@{self.version}"


def _escape(module: str) -> str:
    # The module cache spells upper-case letters as '!' + lower case.
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in module)


def load_stack() -> dict:
    return yaml.safe_load((paths.MANIFESTS / "stack.yaml").read_text())


def programs() -> dict[str, Program]:
    out = {}
    for name, spec in load_stack()["programs"].items():
        out[name] = Program(
            name=name,
            module=spec["module"],
            version=spec["version"],
            sum=spec.get("sum", ""),
            packages=dict(spec["packages"]),
            require=tuple(spec.get("require", ())),
            staging=spec.get("staging", ""),
            tags=tuple(spec.get("tags", ())),
            version_ldflags=bool(spec.get("version_ldflags", False)),
        )
    return out


def go_env(key: str) -> str:
    return _run(["go", "env", key], timeout=30).strip()


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 60, env: dict | None = None) -> str:
    return _stream(argv, cwd, env, timeout, lambda _line: None)


def _stream(argv: list[str], cwd: Path | None, env: dict | None, timeout: float,
            on_line: Callable[[str], None]) -> str:
    """Run `argv`, giving each stderr line to `on_line` as it comes; returns stdout. A failure
    raises HarnessError with the tail of stderr."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    except FileNotFoundError:
        raise HarnessError(
            f"{argv[0]} is not installed", fix=f"install {argv[0]} (Go comes from the machine image)"
        ) from None
    tail: list[str] = []

    def read_stderr() -> None:
        for line in proc.stderr:
            tail.append(line)
            del tail[:-200]
            on_line(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    timed_out = threading.Event()
    killer = threading.Timer(timeout, lambda: (timed_out.set(), proc.kill()))
    killer.start()
    try:
        out = proc.stdout.read()
        proc.wait()
        reader.join()
    finally:
        killer.cancel()
    if proc.returncode != 0:
        if timed_out.is_set():
            raise HarnessError(f"{' '.join(argv[:4])} did not finish within {timeout:.0f} s")
        raise HarnessError(
            f"{' '.join(argv[:6])} failed (exit {proc.returncode}) in {cwd}:\n{''.join(tail)[-3000:]}")
    return out


def _download(program: Program, workdir: Path) -> dict:
    """Fetch the pinned module once and check it against its pinned go.sum hash, the single
    source of truth for what gets built."""
    info = json.loads(_run(["go", "mod", "download", "-json", f"{program.module}@{program.version}"],
                           cwd=workdir, timeout=GO_DOWNLOAD_TIMEOUT_S))
    if program.sum and info.get("Sum") != program.sum:
        raise HarnessError(
            f"{program.module}@{program.version} hashes to {info.get('Sum')}, "
            f"but manifests/stack.yaml pins {program.sum}",
            fix="check the module proxy, or update the pin on purpose",
        )
    return info


def _staging_replaces(program: Program, gomod: Path) -> list[str]:
    """Turn the upstream go.mod's ./staging replaces into pinned module versions."""
    out = []
    for line in gomod.read_text().splitlines():
        parts = line.split()
        if "=>" in parts and parts[-1].startswith("./staging/"):
            out.append(f"\t{parts[0]} => {parts[0]} {program.staging}")
    return out


def _ldflags(program: Program) -> str:
    flags = ["-s", "-w"]
    if program.version_ldflags:
        major, minor = program.version.lstrip("v").split(".")[:2]
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [
                f"-X {pkg}.gitVersion={program.version}",
                f"-X {pkg}.gitMajor={major}",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
                f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
            ]
    return " ".join(flags)


def _flags(program: Program) -> list[str]:
    """Build flags, the same for `go list` (so it judges staleness as the build will) and `go build`."""
    flags = ["-trimpath", f"-ldflags={_ldflags(program)}"]
    return flags + ([f"-tags={','.join(program.tags)}"] if program.tags else [])


def _targets(program: Program) -> dict[str, str]:
    """Each binary's package path."""
    return {binary: program.module if pkg == "." else f"{program.module}/{pkg}"
            for binary, pkg in program.packages.items()}


def compile_with_progress(progress: BuildProgress, workdir: Path, env: dict, flags: list[str],
                          outputs: dict[Path, str], timeout: float = GO_BUILD_TIMEOUT_S) -> None:
    """`go list` what the cache lacks, then `go build -v` each output, feeding `progress`."""
    progress.step("listing packages (and downloading modules the first time)")
    stale = _stream(["go", "list", "-deps", *flags, "-f", "{{if .Stale}}{{.ImportPath}}{{end}}",
                     *sorted(set(outputs.values()))], workdir, env, timeout, progress.feed)
    progress.expect(line for line in stale.splitlines() if line)
    for i, (out, target) in enumerate(outputs.items(), 1):
        progress.step(f"building {out.name} ({i} of {len(outputs)})")
        _stream(["go", "build", "-v", *flags, "-o", str(out), target], workdir, env, timeout,
                progress.feed)


def build(program: Program, log=print) -> Program:
    """Build one program's binaries unless they are cached already."""
    if program.built:
        return program
    workdir = paths.CACHE / "build" / f"{program.name}-{program.version}"
    workdir.mkdir(parents=True, exist_ok=True)
    progress = BuildProgress(program.name, program.version, log, read_last_cold(program.record))
    log(f"building {program.name} {program.version} from {program.module} (cached under {program.bindir}); "
        + progress.previous())
    with progress.ticking():
        progress.step(f"downloading {program.module}@{program.version}")
        info = _download(program, workdir)
        lines = [f"module platform-conformance.local/build/{program.name}", "", "go 1.26.0", "", "require ("]
        lines.append(f"\t{program.module} {program.version}")
        lines += [f"\t{m} {program.version}" for m in program.require]
        lines.append(")")
        if program.staging:
            lines += ["", "replace ("] + _staging_replaces(program, Path(info["GoMod"])) + [")"]
        (workdir / "go.mod").write_text("\n".join(lines) + "\n")
        env = dict(os.environ, GOFLAGS="-mod=mod", CGO_ENABLED="0")
        tmp = program.bindir.with_suffix(".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        compile_with_progress(progress, workdir, env, _flags(program),
                              {tmp / binary: target for binary, target in _targets(program).items()})
    shutil.rmtree(program.bindir, ignore_errors=True)
    tmp.rename(program.bindir)
    write_record(program.record, progress.finish())
    return program


def build_all(names: list[str] | None = None, log=print) -> dict[str, Program]:
    """Build what is missing, two modules at a time (each go build uses every core already)."""
    progs = programs()
    wanted = [progs[n] for n in (names or list(progs))]
    missing = [p for p in wanted if not p.built]
    if missing and shutil.which("go") is None:
        raise HarnessError(
            f"go is not installed, and these programs need building: {', '.join(p.name for p in missing)}",
            fix="install Go 1.26 (the machine image has it in /usr/local/go/bin) and put it on PATH")
    if missing:
        # The largest build goes first so the small ones overlap with it.
        missing.sort(key=lambda p: -len(p.packages))
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda p: build(p, log), missing))
    return progs
