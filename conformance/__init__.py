"""platform-conformance: the library under the conformance suites.

Nothing here imports pytest, so probes and helpers stay usable from a REPL against a live
cluster. The pytest glue lives in `fixtures/`.
"""
from __future__ import annotations


class InputError(Exception):
    """The suite could not run because of its input (exit code 2).

    Raised for a bad profile, a missing or broken kubeconfig, an unreachable API server or a
    lease held by another run. The message names the input and the fix, so callers print it
    as is, without a traceback.
    """
