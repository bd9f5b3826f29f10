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
