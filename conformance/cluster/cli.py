"""Command line of the local cluster harness: up, down, status, hold, release, build."""
from __future__ import annotations

import argparse
import json
import sys

from conformance.cluster import paths
from conformance.cluster.errors import HarnessError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring the local cluster up (builds what is missing; idempotent)")
    up.add_argument("--runtime", choices=paths.RUNTIMES, default=None,
                    help="the node's container runtime (default: the running one, else $PCF_RUNTIME, else cri-o)")
    down = sub.add_parser("down", help="stop and remove everything the cluster started or created")
    for p in (up, down):
        p.add_argument("--provider", choices=("local", "kind"), default="local",
                       help="local: the cluster on this host's processes; kind: a multi-node kind cluster in podman")
    up.add_argument("--kind-variant", choices=("kube-router", "cilium"), default="kube-router",
                    help="kind's CNI: kube-router (runs here), or Cilium without kube-proxy (production's shape)")
    sub.add_parser("status", help="print each component's pid, restarts and hold state")
    sub.add_parser("build", help="build the pinned programs and images into the cache")
    pkgs = sub.add_parser("packages", help="install the Debian packages the cluster needs")
    pkgs.add_argument("--test-tools", action="store_true", help="also what the project's own tests need")
    pub = sub.add_parser("publish", help="push the images the suite's workloads pull to a registry")
    pub.add_argument("--registry", default=None, metavar="HOST[:PORT][/PREFIX]",
                     help="where to push, as the profile's images.registry_prefix names it "
                          "(default: that setting of --profile)")
    pub.add_argument("--profile", default="local", metavar="NAME|PATH",
                     help="the profile whose images.registry_prefix names the registry (default: local)")
    pub.add_argument("--dest-tls-verify", choices=("true", "false"), default="true",
                     help="false for a registry served over plain HTTP or with a certificate not trusted here")
    pub.add_argument("--authfile", default=None, help="registry credentials (default: skopeo's usual auth file)")
    pub.add_argument("--list-images", action="store_true", help="print upstream and pushed names; push nothing")
    for name in ("hold", "release"):
        p = sub.add_parser(name, help=f"{name} one component (fault injection)")
        p.add_argument("component")
    args = parser.parse_args(argv)
    from conformance.cluster import local

    try:
        if args.command in ("up", "down") and args.provider == "kind":
            from conformance.cluster import kind

            if args.command == "down":
                kind.down()
            elif args.runtime not in (None, "containerd"):
                raise HarnessError(f"--runtime={args.runtime} is not available with --provider kind",
                                   fix="kind's nodes run containerd; drop --runtime")
            else:
                kind.up(variant=args.kind_variant)
        elif args.command == "up":
            local.up(runtime=args.runtime)
        elif args.command == "down":
            local.down()
        elif args.command == "status":
            print(json.dumps(local.status(), indent=1))
        elif args.command == "packages":
            from conformance.cluster import host

            host.ensure_packages(test_tools=args.test_tools)
        elif args.command == "build":
            from conformance.cluster import build, stack_images

            stack_images.build_all(build.build_all())
        elif args.command == "publish":
            return _publish(args)
        else:
            local.hold(args.component, args.command == "hold")
    except HarnessError as exc:
        print(f"error: {exc.problem}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was already started or created stays; `nox -s cluster-down` removes it "
              "(`-- --provider kind` for the kind cluster)", file=sys.stderr)
        return 130
    return 0


def _publish(args: argparse.Namespace) -> int:
    from conformance import InputError, mirror, profile as profiles
    from conformance.cluster import publish
    from conformance.profile import Images

    try:
        profile = profiles.load(args.profile, [])
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    registry = args.registry or profile.images.registry_prefix
    if not registry:
        raise HarnessError(f"no registry: --registry is not given and profile {profile.name!r} sets no "
                           "images.registry_prefix", fix="add --registry=HOST[:PORT][/PREFIX]")
    if args.list_images:
        print(mirror.listing(profile.name, Images(registry_prefix=publish.check_registry(registry)),
                             referee=profile.policy.allow_upstream_e2e))
        return 0
    publish.publish(registry, tls_verify=args.dest_tls_verify == "true", authfile=args.authfile,
                    referee=profile.policy.allow_upstream_e2e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
