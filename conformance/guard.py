"""The write guard: refuses, before a request leaves, every write the run has no business making.

RBAC is the first fence and lives on the server; this is the second, in the client, so that a
wrong test cannot write outside its scope even under an identity that could. The guard sees
what the API server will see, the HTTP method and path, and decides from those alone:

- reads (get, list, watch) always pass;
- in read-only mode every other verb is refused;
- in full mode a write passes when it lands in one of the run's namespaces, in the control
  namespace, or on an allowlisted resource (cluster-scoped, or in a named namespace).

Every request of the Kubernetes client is serialised by `ApiClient.param_serialize` and sent by
`ApiClient.call_api`; `GuardedApiClient` checks at both, so typed APIs, the dynamic client,
watches and exec/port-forward streams are all covered.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from kubernetes import client as k8s

CONTROL_NAMESPACE = "pcf-system"
READ_VERBS = frozenset({"get", "list", "watch"})
# Subresources that act on a workload even when the HTTP method is GET (a websocket upgrade);
# the API server authorises them as `create`, and so does the guard.
ACTION_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy", "eviction"})
# k8s.io/apiserver treats these as subresources of the namespace itself, not as resources in it.
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
# The client may be given a request timeout per call; this one applies when none is given, so
# that no request can hang a run (connect, read; in seconds).
DEFAULT_REQUEST_TIMEOUT = (10, 120)


@dataclass(frozen=True)
class Request:
    """One API request as the server's authoriser sees it."""

    verb: str
    path: str
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None

    @property
    def resource_id(self) -> str:
        """`resource.group`, or just `resource` for the core group; the allowlist's vocabulary."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def is_read(self) -> bool:
        return self.verb in READ_VERBS and self.subresource not in ACTION_SUBRESOURCES

    @property
    def creates_object(self) -> bool:
        """A create or apply whose body is an object to label (not a subresource action)."""
        return self.verb in ("create", "apply") and not self.subresource and bool(self.resource)

    def __str__(self) -> str:
        what = self.resource_id + (f"/{self.subresource}" if self.subresource else "")
        where = f" in namespace {self.namespace}" if self.namespace else ""
        named = f" {self.name!r}" if self.name else ""
        return f"{self.verb} {what}{named}{where}" if self.resource else f"{self.verb} {self.path}"


def parse(method: str, url: str, body: object = None, content_type: str = "") -> Request:
    """Map an HTTP request to the authoriser's (verb, group, resource, namespace, name)."""
    split = urlsplit(url)
    path = unquote(split.path)
    query = parse_qs(split.query)
    parts = [p for p in path.split("/") if p]
    method = method.upper()
    watch = query.get("watch", [""])[0].lower() in ("true", "1")

    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        rest = None
    if not rest:  # non-resource URL or discovery (/livez, /version, /apis/g/v)
        verb = "get" if method in ("GET", "HEAD") else method.lower()
        return Request(verb=verb, path=path)

    namespace = None
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:])
    if resource == "namespaces" and name:
        namespace = name

    if method in ("GET", "HEAD"):
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "apply" if "apply-patch" in content_type else "patch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = method.lower()
    if verb == "create" and name is None and isinstance(body, dict):
        meta = body.get("metadata") or {}
        name = meta.get("name") or (meta.get("generateName") and meta["generateName"] + "*")
        if resource == "namespaces":
            namespace = None  # creating a namespace is a cluster-scoped write
    return Request(verb=verb, path=path, group=group, version=version, resource=resource,
                   subresource=subresource, namespace=namespace, name=name)


class WriteRefused(PermissionError):
    """The guard refused a request before it left; the message says which rule and why."""

    def __init__(self, request: Request, why: str):
        self.request, self.why = request, why
        super().__init__(f"write guard refused {request}: {why}")


@dataclass(frozen=True)
class WriteGuard:
    """The rules of one run. `run_prefixes` name its namespaces (`pcf-<run id>-`)."""

    mode: Literal["read-only", "full"]
    run_prefixes: tuple[str, ...] = ()
    control_namespace: str = CONTROL_NAMESPACE
    cluster_scoped: frozenset[str] = frozenset()
    namespaced: frozenset[tuple[str, str]] = frozenset()  # (resource.group, namespace)
    halted: str | None = None  # why the run must stop writing; then only its cleanup's deletes pass

    @classmethod
    def for_profile(cls, mode, run_prefixes, allowlist, control_namespace=CONTROL_NAMESPACE):
        """A guard from a profile's `write_allowlist`."""
        return cls(mode=mode, run_prefixes=tuple(run_prefixes), control_namespace=control_namespace,
                   cluster_scoped=frozenset(allowlist.cluster_scoped),
                   namespaced=frozenset((w.resource, w.namespace) for w in allowlist.namespaced))

    def owns(self, namespace: str | None) -> bool:
        """True for a namespace the run created (its name starts with a run prefix)."""
        return bool(namespace and self.run_prefixes and namespace.startswith(self.run_prefixes))

    def decide(self, request: Request) -> str:
        """The rule that allows `request`; raises WriteRefused when none does."""
        if request.is_read:
            return "reads are always allowed"
        if self.mode == "read-only":
            raise WriteRefused(request, "this is a read-only run; rerun with --mode full to allow writes")
        if self.halted and request.verb != "delete":
            raise WriteRefused(request, f"{self.halted}; the run now only deletes what it created")
        if not request.resource:
            raise WriteRefused(request, "writes to non-resource URLs are never made by the suite")
        if request.resource_id == "namespaces":
            return self._namespace_object(request)
        if request.namespace:
            return self._namespaced(request)
        if request.verb == "deletecollection":
            raise WriteRefused(request, "a cluster-wide deletecollection could remove objects the run "
                               "did not create")
        if request.resource_id in self.cluster_scoped:
            return f"{request.resource_id} is in the profile's cluster-scoped allowlist"
        raise WriteRefused(request, f"{request.resource_id} is cluster-scoped and not in the profile's "
                           "write_allowlist.cluster_scoped")

    def _namespace_object(self, request: Request) -> str:
        name = request.name or ""
        if self.owns(name.rstrip("*")):
            return "the namespace is one of the run's"
        if name == self.control_namespace:
            raise WriteRefused(request, "the control namespace itself is managed by the RBAC manifests, "
                               "not by runs")
        raise WriteRefused(request, f"namespace {name!r} is not one of the run's "
                           f"(named {' or '.join(p + '*' for p in self.run_prefixes) or 'by a run'})")

    def _namespaced(self, request: Request) -> str:
        ns = request.namespace
        if self.owns(ns):
            return "the namespace is one of the run's"
        if ns == self.control_namespace:
            return "the control namespace holds the run's lease and markers"
        if request.verb == "deletecollection":
            raise WriteRefused(request, "deletecollection outside the run's namespaces could remove "
                               "objects the run did not create")
        if (request.resource_id, ns) in self.namespaced:
            return f"({request.resource_id}, {ns}) is in the profile's namespaced allowlist"
        raise WriteRefused(request, f"namespace {ns!r} is not the run's, not {self.control_namespace!r}, "
                           f"and ({request.resource_id}, {ns}) is not in the profile's "
                           "write_allowlist.namespaced")


Stamp = Callable[[dict], dict]


class GuardedApiClient(k8s.ApiClient):
    """An ApiClient that asks the guard before each request and labels what the run creates."""

    def __init__(self, configuration: k8s.Configuration, guard: WriteGuard, stamp: Stamp | None = None,
                 **kwargs):
        super().__init__(configuration, **kwargs)
        self.guard, self.stamp = guard, stamp

    def halt(self, why: str) -> None:
        """Refuse every write from now on but the deletes of the run's cleanup (its scope
        unchanged); callable from any thread."""
        self.guard = replace(self.guard, halted=why)

    def check(self, method: str, url: str, headers: dict | None, body: object) -> Request:
        content_type = (headers or {}).get("Content-Type", "")
        request = parse(method, url, body, content_type)
        self.guard.decide(request)
        return request

    def param_serialize(self, method, resource_path, *args, **kwargs):
        method, url, headers, body, post_params = super().param_serialize(
            method, resource_path, *args, **kwargs)
        request = self.check(method, url, headers, body)
        if self.stamp and request.creates_object and isinstance(body, dict):
            body = self.stamp(body)
        return method, url, headers, body, post_params

    def call_api(self, method, url, header_params=None, body=None, post_params=None,
                 _request_timeout=None):
        self.check(method, url, header_params, body)
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout=_request_timeout or DEFAULT_REQUEST_TIMEOUT)
