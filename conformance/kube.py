"""Connecting to the cluster: which kubeconfig, context and identity, and whether it answers.

Every failure here is the user's input, not the platform's, so each one raises an InputError
whose message names the kubeconfig (and where that path came from), the context, the server
and the fix. The reachability check gives up within ten seconds, whatever the network does.
"""
from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from conformance import InputError
from conformance.guard import GuardedApiClient, Stamp, WriteGuard

DEFAULT_KUBECONFIG = Path("~/.kube/config")
REACHABLE_WITHIN_S = 10.0
FIX_TARGET = ("pass --kubeconfig and --context for a running cluster, or set $KUBECONFIG; "
              "for the local cluster run `nox -s cluster` first")


class KubeconfigError(InputError):
    """A kubeconfig that is missing, broken, or lacks the context asked for."""


class Unreachable(InputError):
    """The API server did not answer, or refused the credentials."""


@dataclass(frozen=True)
class Target:
    """Where and as whom the suite connects, and where each choice came from."""

    kubeconfig: str
    kubeconfig_from: str
    context: str | None = None
    context_from: str = "the kubeconfig's current-context"
    impersonate: str | None = None

    def describe(self) -> str:
        ctx = f"context {self.context!r} (from {self.context_from})" if self.context else self.context_from
        who = f", impersonating {self.impersonate!r}" if self.impersonate else ""
        return f"kubeconfig {self.kubeconfig} (from {self.kubeconfig_from}), {ctx}{who}"


def resolve_target(kubeconfig: str | None = None, context: str | None = None,
                   impersonate: str | None = None, identity=None, identity_name: str = "",
                   environ=os.environ) -> Target:
    """The command line first, then $KUBECONFIG, then the profile's identity, then ~/.kube/config.

    `identity` is the profile's `identities.<mode>` section; `--as ''` turns impersonation off.
    """
    profile_key = f"the profile's identities.{identity_name}" if identity_name else "the profile"
    if kubeconfig:
        path, origin = kubeconfig, "--kubeconfig"
    elif environ.get("KUBECONFIG"):
        path, origin = environ["KUBECONFIG"], "$KUBECONFIG"
    elif identity is not None and identity.kubeconfig:
        path, origin = identity.kubeconfig, f"{profile_key}.kubeconfig"
    else:
        path, origin = str(DEFAULT_KUBECONFIG), "the default location"
    if context:
        ctx, ctx_from = context, "--context"
    elif identity is not None and identity.context:
        ctx, ctx_from = identity.context, f"{profile_key}.context"
    else:
        ctx, ctx_from = None, "the kubeconfig's current-context"
    if impersonate is not None:
        user = impersonate or None
    else:
        user = identity.user if identity is not None else None
    return Target(str(Path(path).expanduser()) if os.pathsep not in path else path, origin, ctx, ctx_from,
                  user)


def configuration(target: Target) -> k8s.Configuration:
    """A client configuration for `target`; raises KubeconfigError naming the input and the fix."""
    contexts: list[str] = []
    current = None
    for path in target.kubeconfig.split(os.pathsep):
        doc = _read(Path(path), target)
        contexts += [c.get("name") for c in doc.get("contexts") or [] if isinstance(c, dict)]
        current = current or doc.get("current-context")
    wanted = target.context or current
    if not wanted:
        raise KubeconfigError(
            f"{target.describe()}: no context is selected (the kubeconfig has no current-context). "
            f"Fix: pass --context with one of: {', '.join(contexts) or '(none defined)'}")
    if wanted not in contexts:
        raise KubeconfigError(
            f"{target.describe()}: the kubeconfig has no context {wanted!r}; its contexts are "
            f"{', '.join(contexts) or '(none)'}. Fix: pass --context with one of them")
    conf = k8s.Configuration()
    try:
        k8s_config.load_kube_config(config_file=target.kubeconfig, context=target.context,
                                    client_configuration=conf, persist_config=False)
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        raise KubeconfigError(f"{target.describe()}: cannot be used: {exc}. Fix: repair that context's "
                              "cluster and user entries (server, certificates, token)") from None
    return conf


def _read(path: Path, target: Target) -> dict:
    if not path.is_file():
        raise KubeconfigError(f"{target.describe()}: {path} does not exist. Fix: {FIX_TARGET}")
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise KubeconfigError(f"{target.describe()}: {path} cannot be read ({exc.strerror}). "
                              "Fix: check its permissions") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise KubeconfigError(f"{target.describe()}: {path} is not valid YAML{where}. "
                              f"Fix: repair it, or {FIX_TARGET}") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"{target.describe()}: {path} is not a kubeconfig (no mapping). "
                              f"Fix: {FIX_TARGET}")
    return doc


def connect(target: Target, guard: WriteGuard, stamp: Stamp | None = None) -> GuardedApiClient:
    """A guarded client for `target`: refuses out-of-scope writes, labels what it creates."""
    api = GuardedApiClient(configuration(target), guard, stamp)
    if target.impersonate:
        api.set_default_header("Impersonate-User", target.impersonate)
    return api


def check_reachable(api: k8s.ApiClient, target: Target, within_s: float = REACHABLE_WITHIN_S) -> str:
    """The server's version, or Unreachable within `within_s` naming the server and the fix.

    The request runs in a thread joined with a deadline, because name resolution is not bounded
    by socket timeouts; a probe that has not answered by then is abandoned.
    """
    conf = copy.deepcopy(api.configuration)
    conf.retries = 0
    probe = k8s.ApiClient(conf)
    probe.default_headers.update(api.default_headers)
    server = conf.host
    outcome: dict = {}

    def ask() -> None:
        try:
            outcome["version"] = k8s.VersionApi(probe).get_code(
                _request_timeout=(within_s * 0.4, within_s * 0.4)).git_version
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=ask, name="pcf-reachable", daemon=True)
    thread.start()
    thread.join(within_s)
    if thread.is_alive():
        raise Unreachable(f"the API server {server} did not answer within {within_s:.0f} s "
                          f"({target.describe()}). Fix: check the address and the network, or {FIX_TARGET}")
    if "version" in outcome:
        return outcome["version"]
    raise Unreachable(f"cannot reach the API server {server} ({target.describe()}): "
                      f"{_why(outcome['error'])}. Fix: {_fix(outcome['error'])}")


def _why(exc: BaseException) -> str:
    if isinstance(exc, k8s.ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    text = str(exc)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return f"{type(exc).__name__}: {text}"


def _fix(exc: BaseException) -> str:
    if isinstance(exc, k8s.ApiException) and exc.status in (401, 403):
        return "the credentials in that kubeconfig context were rejected; renew them or pick another context"
    if "SSL" in type(getattr(exc, "reason", exc)).__name__ or "CERTIFICATE" in str(exc):
        return "the server's certificate does not match the kubeconfig's certificate-authority; fix the context"
    return FIX_TARGET
