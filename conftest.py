"""The suite's pytest plugins, in load order. This file lists them and holds nothing else."""

pytest_plugins = [
    "fixtures.options",
    "fixtures.promises",
    "fixtures.selection",
    "fixtures.cluster",
    "fixtures.namespaces",
    "fixtures.diagnostics",
    "fixtures.outside",
    "fixtures.workloads",
    "fixtures.probes",
    "fixtures.argocd",
    "fixtures.reporting",
]
