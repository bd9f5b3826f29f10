"""The suite's pytest plugins, in load order. This file lists them and holds nothing else."""

pytest_plugins = [
    "fixtures.options",
    "fixtures.promises",
    "fixtures.selection",
    "fixtures.cluster",
    "fixtures.namespaces",
    "fixtures.diagnostics",
    "fixtures.outside",
    "fixtures.certificates",
    "fixtures.secrets",
    "fixtures.storage",
    "fixtures.workloads",
    "fixtures.probes",
    "fixtures.edge",
    "fixtures.argocd",
    "fixtures.reporting",
]
