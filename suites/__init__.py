"""Conformance suites: one module per component. Suites never import each other."""
