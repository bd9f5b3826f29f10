"""Connecting: which kubeconfig wins, and a clear error for each way the input can be wrong."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from conformance import kube, profile as profiles
from conformance.guard import WriteGuard

GUARD = WriteGuard("read-only")


def kubeconfig(tmp_path: Path, server: str = "https://127.0.0.1:1", current: str | None = "ctx",
               contexts=("ctx",), name: str = "config") -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": c, "context": {"cluster": "c", "user": "u"}} for c in contexts],
    }
    if current:
        doc["current-context"] = current
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_command_line_beats_environment_beats_profile():
    identity = profiles.Identity(kubeconfig="/profile.conf", context="p-ctx", user="platform-conformance:reader")
    t = kube.resolve_target("/cli.conf", None, None, identity, "read_only", environ={"KUBECONFIG": "/env.conf"})
    assert (t.kubeconfig, t.kubeconfig_from) == ("/cli.conf", "--kubeconfig")
    assert (t.context, t.context_from) == ("p-ctx", "the profile's identities.read_only.context")
    assert t.impersonate == "platform-conformance:reader"
    t = kube.resolve_target(None, "cli-ctx", "", identity, "read_only", environ={"KUBECONFIG": "/env.conf"})
    assert (t.kubeconfig, t.kubeconfig_from, t.context) == ("/env.conf", "$KUBECONFIG", "cli-ctx")
    assert t.impersonate is None  # --as '' turns the profile's impersonation off
    t = kube.resolve_target(None, None, None, identity, "read_only", environ={})
    assert (t.kubeconfig, t.kubeconfig_from) == ("/profile.conf", "the profile's identities.read_only.kubeconfig")
    t = kube.resolve_target(None, None, None, None, environ={})
    assert t.kubeconfig.endswith(".kube/config") and t.kubeconfig_from == "the default location"


def test_missing_kubeconfig_names_file_origin_and_fix(tmp_path):
    t = kube.resolve_target(str(tmp_path / "absent.conf"), environ={})
    with pytest.raises(kube.KubeconfigError) as caught:
        kube.configuration(t)
    message = str(caught.value)
    assert "absent.conf does not exist" in message and "(from --kubeconfig)" in message
    assert "Fix:" in message and "nox -s cluster" in message


def test_broken_yaml(tmp_path):
    path = tmp_path / "broken.conf"
    path.write_text("apiVersion: v1\nclusters: [\n  - name: c\n")
    with pytest.raises(kube.KubeconfigError, match=r"not valid YAML at line \d+"):
        kube.configuration(kube.resolve_target(str(path), environ={}))


def test_not_a_mapping(tmp_path):
    path = tmp_path / "list.conf"
    path.write_text("- a\n- b\n")
    with pytest.raises(kube.KubeconfigError, match="not a kubeconfig"):
        kube.configuration(kube.resolve_target(str(path), environ={}))


def test_unknown_context_lists_the_known_ones(tmp_path):
    path = kubeconfig(tmp_path, contexts=("alpha", "beta"), current="alpha")
    with pytest.raises(kube.KubeconfigError) as caught:
        kube.configuration(kube.resolve_target(str(path), "gamma", environ={}))
    message = str(caught.value)
    assert "no context 'gamma'" in message and "alpha, beta" in message and "(from --context)" in message


def test_no_current_context_and_none_given(tmp_path):
    path = kubeconfig(tmp_path, current=None)
    with pytest.raises(kube.KubeconfigError, match="no context is selected.*--context with one of: ctx"):
        kube.configuration(kube.resolve_target(str(path), environ={}))


def test_context_with_a_broken_user_entry(tmp_path):
    path = kubeconfig(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["users"][0]["user"] = {"client-certificate": str(tmp_path / "missing.crt"),
                               "client-key": str(tmp_path / "missing.key")}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(kube.KubeconfigError, match="cannot be used"):
        kube.configuration(kube.resolve_target(str(path), environ={}))


def test_valid_kubeconfig_gives_the_server(tmp_path):
    conf = kube.configuration(kube.resolve_target(str(kubeconfig(tmp_path, server="https://10.1.2.3:6443")),
                                                  environ={}))
    assert conf.host == "https://10.1.2.3:6443"


def test_closed_port_is_unreachable_quickly_with_server_and_fix(tmp_path):
    t = kube.resolve_target(str(kubeconfig(tmp_path)), environ={})
    api = kube.connect(t, GUARD)
    started = time.monotonic()
    with pytest.raises(kube.Unreachable) as caught:
        kube.check_reachable(api, t)
    assert time.monotonic() - started < kube.REACHABLE_WITHIN_S
    message = str(caught.value)
    assert "https://127.0.0.1:1" in message and "connection refused" in message
    assert str(t.kubeconfig) in message and "Fix:" in message


def test_silent_server_is_abandoned_at_the_deadline(tmp_path):
    """A server that accepts and never answers must not hold the run past the deadline."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        t = kube.resolve_target(str(kubeconfig(tmp_path, server=f"http://127.0.0.1:{silent.getsockname()[1]}")),
                                environ={})
        started = time.monotonic()
        with pytest.raises(kube.Unreachable):
            kube.check_reachable(kube.connect(t, GUARD), t, within_s=1.0)
        assert time.monotonic() - started < 3


def test_impersonation_header(tmp_path):
    t = kube.resolve_target(str(kubeconfig(tmp_path)), None, "platform-conformance:reader", environ={})
    api = kube.connect(t, GUARD)
    assert api.default_headers["Impersonate-User"] == "platform-conformance:reader"
    assert "impersonating 'platform-conformance:reader'" in t.describe()
