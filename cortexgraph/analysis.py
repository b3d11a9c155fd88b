"""Spec -> Analysis: the area graph, its shapes, when signal reaches each area.

The three notations lower to one list of `Edge`s (`lowering.py`); the
checks (`checks.py`) find what pydantic and the lowering cannot (names that
refer to each other, shapes, ties, time) and report every problem at once.

When each area gets a value, and what a readout needs of it, is the
timeline's (`timeline.py`), which the analysis builds for the spec's steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from .checks import Checker, Limits
from .collector import collector_paused
from .errors import Problem
from .lowering import INPUT, ZEROS, AreaCell, Edge, Reporter, every_step, fires_throughout, lower_edges  # noqa: F401
from .ops.norm_spec import NO_NORM, NormSpec
from .ops.op_params import Params, Shape
from .ops.registry import OpDef
from .spec import Spec
from .timeline import Timeline, build_timeline, live, zero_delay_cycle  # noqa: F401 (the stages below read them here)


@dataclass
class Analysis:
    """A checked spec: shapes, the lowered edges, the hierarchy and edge kinds, arrival steps, warnings."""

    spec: Spec
    edges: tuple[Edge, ...]
    shapes: dict[str, Shape]  # every area and INPUT
    prenet: list[tuple[OpDef, Params, Shape]]  # each pre-net layer: its op, validated parameters, output shape
    levels: dict[str, int]  # each area's level in the hierarchy that feedforward edges make (see `hierarchy`)
    kinds: dict[str, str]  # each edge's kind: feedforward, feedback, lateral, skip or input
    timeline: Timeline
    warnings: list[Problem]
    limits: Limits
    head_norm: NormSpec = NO_NORM  # the post-net's norm, its default resolved (see `Checker.head_norm`)
    cells: dict[str, AreaCell] = field(default_factory=dict)  # each area's cell
    _by_name: dict[str, Edge] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name = {e.name: e for e in self.edges}

    @property
    def edges_by_name(self) -> dict[str, Edge]:
        return self._by_name

    @property
    def arrival(self) -> dict[str, int | None]:
        return self.timeline.arrival

    def edge(self, name: str) -> Edge:
        return self._by_name[name]

    @property
    def running(self) -> frozenset[str]:
        """Areas whose cell runs at every step (every cell but `sum`)."""
        return frozenset(a for a, c in self.cells.items() if c.runs_every_step)

    @property
    def stateful(self) -> frozenset[str]:
        """Areas whose cell reads its previous value."""
        return frozenset(a for a, c in self.cells.items() if c.reads_state)

    def timeline_for(self, steps: int) -> Timeline:
        """The timeline of a run of another number of steps (rules extend, listed steps stay)."""
        if steps == self.timeline.steps:
            return self.timeline
        with collector_paused():
            return build_timeline(self.edges, list(self.spec.areas), steps, self.running, self.spec.silence)


def analyze(spec: Spec, limits: Limits = Limits(), allow_imports: bool = False) -> Analysis:
    """Check a parsed spec and work out everything later stages need; SpecError on any error.

    `allow_imports` lets ops named `package.module:op` import their module (specs never run code
    otherwise)."""
    with collector_paused():
        checked = Checker(spec, limits, allow_imports).run()
        levels, kinds = hierarchy(checked.edges, checked.shapes, checked.timeline.arrival, list(spec.areas))
    return Analysis(spec, checked.edges, checked.shapes, checked.prenet, levels, kinds, checked.timeline,
                    checked.warnings, limits, checked.head_norm, checked.cells)


def lower(spec: Spec) -> tuple[Edge, ...]:
    """The spec's edges in the internal form, whichever notation wrote them (no other checks)."""
    reporter = Reporter(spec.source)
    edges = lower_edges(spec, reporter)
    reporter.stop_if_errors()
    return edges


# --- the hierarchy ---------------------------------------------------------------------------------


def hierarchy(edges: tuple[Edge, ...], shapes: dict[str, Shape], arrival: dict[str, int | None],
              areas: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """(the level of each area, the kind of each edge), derived, not declared.

    An edge is feedforward when it goes to a smaller area (or to one of the same size that signal
    reaches later), feedback the other way, lateral between areas of one size reached at the same step
    (a self edge is lateral too), and a skip when it is feedforward over more than one level of the
    hierarchy that feedforward edges define (an area's level: the longest feedforward path to it)."""

    def key(area: str) -> tuple[int, int]:  # lower in the hierarchy = larger, then reached earlier
        first = arrival.get(area)
        return (-shapes[area][1] * shapes[area][2], first if first is not None else 1 << 30)

    forward = nx.DiGraph()
    forward.add_nodes_from(areas)
    for edge in edges:
        if not edge.is_input and key(edge.source) < key(edge.target):
            forward.add_edge(edge.source, edge.target)
    level: dict[str, int] = {}
    for area in nx.topological_sort(forward):
        level[area] = max((level[p] + 1 for p in forward.predecessors(area)), default=0)
    kinds = {}
    for edge in edges:
        if edge.is_input:
            kinds[edge.name] = "input"
        elif key(edge.source) < key(edge.target):
            kinds[edge.name] = "skip" if level[edge.target] > level[edge.source] + 1 else "feedforward"
        elif key(edge.source) > key(edge.target):
            kinds[edge.name] = "feedback"
        else:
            kinds[edge.name] = "lateral"
    return level, kinds
