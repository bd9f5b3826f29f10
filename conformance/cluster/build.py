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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from conformance.cluster import paths
from conformance.cluster.errors import HarnessError

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
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise HarnessError(
            f"{argv[0]} is not installed", fix=f"install {argv[0]} (Go comes from the machine image)"
        ) from None
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{' '.join(argv[:4])} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise HarnessError(
            f"{' '.join(argv[:6])} failed (exit {proc.returncode}) in {cwd}:\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


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


def build(program: Program, log=print) -> Program:
    """Build one program's binaries unless they are cached already."""
    if program.built:
        return program
    workdir = paths.CACHE / "build" / f"{program.name}-{program.version}"
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"building {program.name} {program.version} from {program.module} (cached under {program.bindir})")
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
    for binary, pkg in program.packages.items():
        target = program.module if pkg == "." else f"{program.module}/{pkg}"
        argv = ["go", "build", "-trimpath", f"-ldflags={_ldflags(program)}", "-o", str(tmp / binary)]
        if program.tags:
            argv.append(f"-tags={','.join(program.tags)}")
        _run(argv + [target], cwd=workdir, timeout=GO_BUILD_TIMEOUT_S, env=env)
    shutil.rmtree(program.bindir, ignore_errors=True)
    tmp.rename(program.bindir)
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
