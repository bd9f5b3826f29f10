"""Which stack tiers the local cluster has installed, for the project's integration tests.

`nox -s tests` installs the core tier always and a heavier tier only when its builds are cached
on the machine, so a tier's integration tests skip, naming the tier and how to install it, when
its components are not on the cluster.
"""
from __future__ import annotations

import pytest

from conformance import stack


def needs(*components: str):
    """A skipif marker for tests that need these stack components on the local cluster."""
    absent = sorted(set(components) - stack.installed())
    tiers = sorted({c.tier for c in stack.components() if c.name in absent})
    return pytest.mark.skipif(
        bool(absent),
        reason=f"stack component(s) {', '.join(absent)} not installed on the local cluster "
               f"(tier {', '.join(tiers) or '?'} not built here; install it with "
               f"`nox -s stack -- --tiers={','.join(tiers) or 'all'}`)")


def absent_claims(profile: str = "local") -> list[str]:
    """Components the profile claims whose stack entries are not on the local cluster."""
    from conformance import profile as profiles

    claimed = profiles.load(profile).claimed
    have = stack.installed()
    return sorted({c.claims for c in stack.components()
                   if c.claims in claimed and c.name not in have})


def installed_profile(path, base: str = "local", **changes):
    """The shipped profile minus the claims of tiers this machine did not install (so a whole-suite
    run of the project's tests judges what is there), with `changes` merged in."""
    from tinysuite import derived_profile

    unclaim = {name: {"claimed": False} for name in absent_claims(base)}
    components = {**unclaim, **changes.pop("components", {})}
    return derived_profile(path, base, components=components, **changes)
