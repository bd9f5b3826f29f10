"""The one error the harness raises for a bad state: what is wrong and how to fix it."""
from __future__ import annotations


class HarnessError(Exception):
    """A state the harness cannot proceed from; printed without a traceback, exit 2."""

    def __init__(self, problem: str, fix: str = ""):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}" + (f"\n  fix: {fix}" if fix else ""))
