"""The local image registry: Debian's docker-registry on the LAN, pulled from by the node's containerd.

It lets the local cluster pull images the way a production cluster does, so publishing the
suite's images (`nox -s publish-images`) and a profile's `images.registry_prefix` can be
proven here. The shape every host-side service of the harness follows:

- start: `spec()`, the supervised command line (the supervisor starts, restarts and stops it);
- ready: `ready()`, true once it serves (bring-up waits on it, up to READY_S);
- stop: the supervisor's SIGTERM, with every other component, in reverse start order;
- leaves behind: nothing outside the state and run folders (its storage, its log and the
  runtime's hosts entry live under paths.STATE, its configuration under paths.RUN), which
  `cluster down` removes; PORTS are checked free before bring-up.

Plain HTTP on the LAN address: the runtime is told so by a hosts.toml entry for this address
(containerd reads those per pull, from the config_path its configuration names).
"""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import yaml

from conformance.cluster import network as net
from conformance.cluster import paths

NAME = "registry"
PORT = 5000
ADDRESS = f"{net.NODE_IPV4}:{PORT}"
PORTS = {PORT: "image registry"}
READY_S = 30
BINARY = "/usr/bin/docker-registry"
STORAGE = paths.STATE / "registry"
CONFIG = paths.RUN / "registry.yml"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def runtime_hosts() -> Path:
    """The runtime's entry for this registry: pull and resolve over plain HTTP."""
    entry = (f'server = "http://{ADDRESS}"\n\n'
             f'[host."http://{ADDRESS}"]\n'
             '  capabilities = ["pull", "resolve"]\n')
    return _write(paths.REGISTRY_HOSTS / ADDRESS / "hosts.toml", entry)


def config(path: Path, address: str = ADDRESS, storage: Path = STORAGE) -> list[str]:
    """Write a configuration serving `storage` on `address`; return the command line that runs it."""
    conf = {
        "version": 0.1,
        # The access log is the evidence of who pulled what.
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": address, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    _write(path, yaml.safe_dump(conf, sort_keys=False))
    return [BINARY, "serve", str(path)]


def spec() -> dict:
    """The supervised command line, with its configuration and the runtime's entry written."""
    runtime_hosts()
    return {"name": NAME, "log": str(paths.LOGS / f"{NAME}.log"), "argv": config(CONFIG)}


def _get(path: str, address: str, timeout: float = 3) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as resp:
        return resp.status, resp.read()


def ready(address: str = ADDRESS) -> bool:
    """The registry answers its API's base endpoint."""
    try:
        return _get("/v2/", address)[0] == 200
    except OSError:
        return False


def catalog(address: str = ADDRESS) -> list[str]:
    """The repositories the registry holds."""
    return json.loads(_get("/v2/_catalog?n=1000", address)[1])["repositories"]
