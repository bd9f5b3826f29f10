"""Which nodes a per-node promise was proven from, which it should have been and was not, and why.

A per-node promise compares {node: answer} with {node: wanted answer}. With no node asked both
sides are empty and the comparison passes with nothing behind it, so the nodes a promise must be
proven from are decided apart from where answers came from: every node the profile names, plus
every node of the cluster a probe pod can run on (Ready, and no taint the probe DaemonSets do
not tolerate). A node that should have been asked and was not is a gap named with its reason
(not in the cluster, NotReady, a taint, no ready probe pod); a node the profile names that is
NotReady or tainted is a gap even if something answered there. Nodes nobody expects are kept
in the evidence, with why they were passed over.

    >>> from conformance.probes import coverage
    >>> exp = coverage.Expected({"a": None, "b": "the cluster has no node b"})
    >>> exp.coverage(["a"]).gaps
    ('node b: the cluster has no node b',)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from conformance.probes.control_plane import NodeFacts

# Taints the probe DaemonSets run despite (manifests/probes/shared.yaml names the control-plane
# one; the DaemonSet controller adds the rest to every DaemonSet pod). Any other NoSchedule or
# NoExecute taint keeps the probes off a node.
TOLERATED_TAINTS = frozenset({
    "node-role.kubernetes.io/control-plane",
    "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable", "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure", "node.kubernetes.io/pid-pressure",
})
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
NO_NODE = "any node: the profile names none (cluster.nodes) and the cluster has none that qualifies"


@dataclass(frozen=True)
class Coverage:
    """The nodes behind a per-node promise: asked, expected and not asked (gaps), extra."""

    expected: tuple[str, ...]
    asked: tuple[str, ...]
    gaps: tuple[str, ...]  # "node X: why", one per expected node not proven; empty means complete
    extra: tuple[str, ...]  # asked although nobody expected them: kept, not a failure
    passed_over: tuple[str, ...] = ()  # "node X: why" for cluster nodes nobody expected

    @property
    def complete(self) -> bool:
        return not self.gaps

    @property
    def missing(self) -> tuple[str, ...]:
        """The expected nodes that are gaps, by name."""
        return tuple(n for n in self.expected if any(g.startswith(f"node {n}: ") for g in self.gaps))

    def __str__(self) -> str:
        # The nodes left out come first: a failure's first line is what a summary keeps.
        if self.gaps:
            # Every node left out, with why, on the first line: a summary keeps only that one.
            lines = [f"not proven on {'; '.join(self.gaps)}" if self.missing else f"not proven on any node: {self.gaps[0]}"]
            lines += [f"  {g}" for g in self.gaps]
        else:
            lines = []
        lines.append(f"expected nodes: {', '.join(self.expected) or '-'}; asked: {', '.join(self.asked) or '-'}")
        if self.extra:
            lines.append(f"also asked (not expected): {', '.join(self.extra)}")
        lines += [f"passed over {p}" for p in self.passed_over]
        return "\n".join(lines)


@dataclass(frozen=True)
class Expected:
    """The nodes a promise must be proven from, each with why it cannot be (None: it can)."""

    nodes: Mapping[str, str | None]
    passed_over: Mapping[str, str] = field(default_factory=dict)

    @property
    def askable(self) -> tuple[str, ...]:
        return tuple(n for n, why in self.nodes.items() if why is None)

    def coverage(self, asked: Iterable[str | None]) -> Coverage:
        """Compare the nodes that answered with the nodes that should have."""
        seen = tuple(dict.fromkeys(n for n in asked if n))
        gaps = []
        for node, why in self.nodes.items():
            if why is not None:
                gaps.append(f"node {node}: {why}")
            elif node not in seen:
                gaps.append(f"node {node}: expected, but nothing was asked or answered there")
        if not self.nodes:
            gaps.append(NO_NODE)
        return Coverage(tuple(self.nodes), seen, tuple(gaps), tuple(n for n in seen if n not in self.nodes),
                        tuple(f"node {n}: {why}" for n, why in self.passed_over.items()))

    def with_reasons(self, more: Mapping[str, str | None]) -> Expected:
        """The same nodes, with a further reason (a missing probe pod, say) where one applies."""
        return Expected({n: why if why is not None else more.get(n) for n, why in self.nodes.items()},
                        self.passed_over)


def blocking_taints(node: NodeFacts) -> tuple[str, ...]:
    """The node's taints that keep a probe pod off it (taints read as key=value:Effect)."""
    out = []
    for taint in node.taints:
        key, effect = taint.split("=", 1)[0], taint.rsplit(":", 1)[-1]
        if effect in BLOCKING_EFFECTS and key not in TOLERATED_TAINTS:
            out.append(taint)
    return tuple(out)


def placement_problem(name: str, node: NodeFacts | None) -> str | None:
    """Why no probe pod can prove anything on this node now, or None."""
    if node is None:
        return f"the cluster has no node {name}"
    if node.ready != "True":
        return f"not Ready (Ready={node.ready}: {node.ready_reason})"
    taints = blocking_taints(node)
    if taints:
        return f"tainted {', '.join(taints)}, which the probe pods do not tolerate"
    return None


def for_probes(profile_nodes: Sequence[str], cluster: Mapping[str, NodeFacts]) -> Expected:
    """Nodes a promise proven from probe pods must cover: the profile's, and every node the
    probes can run on; the profile's nodes count even where no probe pod can run."""
    nodes: dict[str, str | None] = {n: placement_problem(n, cluster.get(n)) for n in profile_nodes}
    passed_over = {}
    for name in sorted(cluster):
        if name in nodes:
            continue
        why = placement_problem(name, cluster[name])
        if why is None:
            nodes[name] = None
        else:
            passed_over[name] = f"{why}; not named by the profile"
    return Expected(nodes, passed_over)


def for_facts(profile_nodes: Sequence[str], cluster: Iterable[str], every: bool = True) -> Expected:
    """Nodes a promise read from the API (versions, certificates, agents) must cover: every node
    the profile names, which fails when the cluster lacks it, and (with `every`) every node of
    the cluster."""
    present = sorted(cluster)
    nodes: dict[str, str | None] = {n: None if n in present else f"the cluster has no node {n}"
                                    for n in profile_nodes}
    if every:
        nodes.update({n: None for n in present if n not in nodes})
    return Expected(nodes)
