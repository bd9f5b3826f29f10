"""Tiny generated suites, run by the real pytest glue in a subprocess.

The exit-code and collection tests need a whole pytest run: they write a project with a
suites/ folder and a conftest that lists the suite's plugins, and run pytest on it with a
timeout. Tests that must pass or fail on their own merit use the plugins that decide
selection, waivers and the verdict, without the cluster plugins, because there is no cluster
in a unit test; the tests of bad input and unreachable clusters use every plugin.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ALL_PLUGINS = ("fixtures.options", "fixtures.promises", "fixtures.selection", "fixtures.cluster",
               "fixtures.namespaces", "fixtures.workloads", "fixtures.diagnostics", "fixtures.reporting")
NO_CLUSTER = ("fixtures.options", "fixtures.promises", "fixtures.selection", "fixtures.reporting")


def project(root: Path, files: dict[str, str], plugins=NO_CLUSTER) -> Path:
    (root / "suites").mkdir(parents=True, exist_ok=True)
    (root / "conftest.py").write_text(f"pytest_plugins = {list(plugins)!r}\n")
    (root / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers -p no:cacheprovider\ntestpaths = suites\n")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def run(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _env() -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KUBECONFIG"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def derived_profile(path: Path, base: str = "local", **changes: object) -> Path:
    """A profile file made from a shipped one with `changes` merged in (nested mappings merge
    key by key), e.g. `derived_profile(p, components={"metallb": {...}})` adds a claim."""
    import yaml

    from conformance import profile as profiles

    def merge(into: dict, new: dict) -> dict:
        for key, value in new.items():
            into[key] = merge(dict(into[key]), value) if isinstance(value, dict) and isinstance(
                into.get(key), dict) else value
        return into

    raw = yaml.safe_load(profiles.resolve(base).read_text())
    path.write_text(yaml.safe_dump(merge(raw, {"name": f"{base}-derived", **changes})))
    return path


# The local profile narrowed to cluster DNS alone, with no capability claims, for tiny suites of DNS promises.
DNS_ONLY = {"cluster": {"dual_stack": False},
            "components": {"control_plane": {"claimed": False}, "runtime": {"claimed": False},
                           "networking": {"claimed": False}, "dns": {"external_name": None},
                           **{name: {"claimed": False} for name in (
                               "metallb", "ingress", "cert_manager", "vault", "vault_secrets", "argocd",
                               "storage", "object_storage", "ceph")}}}
