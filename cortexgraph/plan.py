"""Analysis -> Plan: the program the module runs, and the weights it needs.

A Plan says, for every step, which areas get a new value and from which edge
calls, each call naming the source value it reads, the weight set that
computes it and the step whose norm it uses. Silent sources and work that
cannot reach what is asked for (the readout, by default) are pruned here,
once, so the module's forward pass is a plain walk over the Plan; the drawing
and the summary read the same Plan, so they show what runs.

A model's weight sets and cells (`weights.py`) are fixed when it is built; the
Plans of its other call forms (steps, readouts, features) come from its
`PlanFamily`, which reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, NamedTuple

from .analysis import INPUT, ZEROS, Analysis, AreaCell, Edge, Timeline, every_step, fires_throughout, live
from .collector import collector_paused
from .errors import Problem
from .ops.norm_spec import NormSpec
from .ops.op_params import Params, Shape
from .ops.registry import OpDef
from .sizes import Size, cell_size, check_size, unshared_size
from .spec import Head as HeadSpec
from .spec import Spec, Stimulus
from .weights import (
    BeyondHorizonError,
    CellSet,
    WeightsAt,
    WeightSet,
    by_edge,
    cell_sets,
    cell_step,
    horizon,
    model_size,
    parts,
    weight_sets,
)

# The vocabulary the Plan's readers use, given here so that they read the Plan, not the stages before it (an
# import-linter contract in pyproject.toml keeps them off spec, lowering, timeline and analysis).
__all__ = ["INPUT", "ZEROS", "AreaCell", "Call", "CellSet", "Edge", "HeadSpec", "Keep", "Plan", "Spec", "Stimulus",
           "Update", "WeightSet", "every_step", "fires_throughout", "PlanFamily", "BeyondHorizonError"]

# What a Plan keeps: what the readout needs at its readout steps (`final`), at every step (`anytime`), every
# value (`none`: nothing pruned), or the (area, step) values asked for (`features`).
Keep = Literal["final", "anytime", "none", "features"]


class Call(NamedTuple):
    """One edge computing at one step. (Named tuples: a Plan holds one per edge and step.)"""

    edge: Edge
    weights: WeightSet  # the weights that compute it
    source: str  # an area, or INPUT
    reads: int  # the step whose value of `source` it reads
    norm_step: int  # the step whose norm it uses


class Update(NamedTuple):
    """`area` gets a new value at `step`: the sum of its calls (the `sum` cell), or its cell's value."""

    area: str
    step: int
    calls: tuple[Call, ...]  # driving and modulating (`call.edge.modulating`) contributions
    cell: CellSet | None = None  # None: the `sum` cell
    prev: int | None = None  # the step of the value the cell reads as its state (None: zeros)
    cell_step: int = 0  # the step whose norm the cell uses


class PlanFamily:
    """Every Plan of one model, one per call form (its steps, what it keeps, the features asked for); made once,
    by `compile`, and held by the model, so that the model's runner never holds the stages before it.

    It holds what the analysis resolved of the spec, which every Plan of the family reads (the edges, shapes,
    arrival, cells, pre-net, the head's norm), and the model's weight sets and cells, fixed here, from the
    spec's steps and horizon, so that a model built from one Plan runs every other. A model that would not fit
    `limits` or this machine is refused here, before anything is built."""

    def __init__(self, analysis: Analysis):
        self._analysis = analysis  # for making Plans: its timelines and what each area's value depends on
        self.spec: Spec = analysis.spec
        self.edges: dict[str, Edge] = analysis.edges_by_name
        self.shapes: dict[str, Shape] = analysis.shapes
        self.input_shape: Shape = (analysis.spec.input.channels, *analysis.spec.input.size)
        self.stimulus: Stimulus | None = analysis.spec.input.stimulus  # None: one image, shown at every step
        self.arrival: dict[str, int | None] = analysis.arrival
        self.levels: dict[str, int] = analysis.levels
        self.kinds: dict[str, str] = analysis.kinds
        self.area_cells: dict[str, AreaCell] = analysis.cells
        self.warnings: list[Problem] = analysis.warnings
        self.prenet: list[tuple[OpDef, Params, Shape]] = analysis.prenet
        self.head_norm: NormSpec = analysis.head_norm
        self.cell_sets: dict[str, CellSet] = cell_sets(analysis)
        self.weight_sets: dict[str, WeightSet] = weight_sets(analysis)
        self.size: Size = model_size(analysis, self.weight_sets, self.cell_sets)
        check_size(analysis, self.size, by_edge(self.weight_sets))
        self.parts: dict[str, Size] = parts(analysis, self.weight_sets, self.cell_sets)

    def plan(self, steps: int | None = None, keep: Keep = "final",
             targets: frozenset[tuple[str, int]] = frozenset()) -> Plan:
        """The program for a run of `steps` steps (the spec's by default), pruned to what `keep` asks for.

        `final` keeps what the readout needs at the readout step(s); `anytime` what it
        needs at every step; `none` keeps every area's value at every step; `features`
        what the `targets` need, the (area, step) values asked for (no readout).
        """
        return _plan_of_call_form(self, self._analysis, steps, keep, targets)

    def unshared(self, plan: Plan) -> Size:
        """The size of `plan`'s program with a fresh set of weights (and norm) for every call it makes, and a
        fresh cell for every update that runs one."""
        edges = unshared_size(self._analysis, (c.edge.name for u in plan.updates for c in u.calls))
        cells = [cell_size(self._analysis, u.area, 1) for u in plan.updates if u.cell is not None]
        return sum(cells, edges)


@dataclass(frozen=True)
class Plan:
    """The program of one call form: for every step, the updates that run, each a sum of edge calls and maybe
    a cell, bound to the weight sets and cells of its family's model. What the spec resolved to (edges,
    shapes, cells, pre-net) is read through the Plan from its family; the rules of a run (what enters at each
    step, when the head reads out) are its methods, so the module, the drawing and the summary share them."""

    steps: int
    prune: Keep
    readout_areas: tuple[str, ...]  # read at each readout step, pooled and concatenated
    readout_steps: tuple[int, ...]
    schedule: tuple[tuple[Update, ...], ...]  # [step] -> updates at that step
    naive_calls: int  # calls in the naive unrolling: every edge at every step it is listed
    family: PlanFamily = field(repr=False, compare=False)
    targets: frozenset[tuple[str, int]] = frozenset()  # what a `features` Plan computes: (area, step) values

    # What the family resolved, read through the Plan.

    @property
    def spec(self) -> Spec:
        return self.family.spec

    @property
    def edges(self) -> dict[str, Edge]:
        """Every edge of the spec by name (pruned or not), in the order the spec lists them."""
        return self.family.edges

    @property
    def shapes(self) -> dict[str, Shape]:
        """(channels, height, width) of every area, and of INPUT (the pre-net's output)."""
        return self.family.shapes

    @property
    def input_shape(self) -> Shape:
        """(channels, height, width) of an image the model takes (of each frame, for a sequence)."""
        return self.family.input_shape

    @property
    def arrival(self) -> dict[str, int | None]:
        """The step at which signal first reaches each area (None: never, within the spec's steps)."""
        return self.family.arrival

    @property
    def levels(self) -> dict[str, int]:
        return self.family.levels

    @property
    def kinds(self) -> dict[str, str]:
        return self.family.kinds

    @property
    def area_cells(self) -> dict[str, AreaCell]:
        """Each area's cell as the spec gives it (`sum` included): its name, parameters and modulation."""
        return self.family.area_cells

    @property
    def warnings(self) -> list[Problem]:
        return self.family.warnings

    @property
    def prenet(self) -> list[tuple[OpDef, Params, Shape]]:
        """Each pre-net layer: its op, validated parameters and output shape."""
        return self.family.prenet

    @property
    def weight_sets(self) -> dict[str, WeightSet]:
        """The model's weight sets, by path (those this Plan calls and the others)."""
        return self.family.weight_sets

    @property
    def cell_sets(self) -> dict[str, CellSet]:
        """The model's cells by area: every cell but `sum`."""
        return self.family.cell_sets

    @property
    def size(self) -> Size:
        """The whole model's parameters and norm statistics."""
        return self.family.size

    @property
    def parts(self) -> dict[str, Size]:
        """The size of each part of the model: `prenet`, each area (the weight sets of the edges into it, and
        its cell), and `head`."""
        return self.family.parts

    @property
    def head_norm(self) -> NormSpec:
        """The post-net's norm before pooling (kind none: no norm)."""
        return self.family.head_norm

    @property
    def head_norm_steps(self) -> tuple[int, ...]:
        """The spec's readout steps: one post-net norm each where per_step."""
        return self.family.spec.readout_steps

    def variant(self, steps: int | None, keep: Keep, targets: frozenset[tuple[str, int]] = frozenset()) -> Plan:
        """The Plan of another call form of the same model (`steps`, what it keeps, the values asked for):
        its weight sets and cells are this one's, so the model that runs this Plan runs it too."""
        return self.family.plan(steps, keep, targets)

    # The rules of a run, in one place.

    def head_norm_step(self, step: int) -> int:
        """The step whose post-net norm a readout at `step` uses: that of the first readout step at or
        after it (the last one's past them all), so every step of an anytime readout is normalised."""
        return next((t for t in self.head_norm_steps if t >= step), self.head_norm_steps[-1])

    @cached_property
    def reads_out(self) -> tuple[int, ...]:
        """The steps at which the head reads out: from the first step at which every readout area has been
        computed in this program, each readout step (`final`) or every step (`anytime`, `none`); none for a
        `features` Plan, which keeps its targets' values instead."""
        first = self.first_update
        if self.prune == "features" or not all(area in first for area in self.readout_areas):
            return ()
        start = max(first[area] for area in self.readout_areas)
        return tuple(t for t in range(start, self.steps + 1) if self.prune != "final" or t in self.readout_steps)

    @cached_property
    def first_update(self) -> dict[str, int]:
        """The step at which this program first computes each area it computes (from then on the area holds
        a value: its latest)."""
        first: dict[str, int] = {}
        for step, updates in enumerate(self.schedule):
            for update in updates:
                first.setdefault(update.area, step)
        return first

    def shown(self, step: int, frames: int | None = None) -> int | str:
        """What enters at `step` (`input.stimulus`): a frame's index (0: the one image), "blank" or "mask".
        `frames` is a sequence's length (None: as long as the run, one frame per step)."""
        stimulus = self.family.stimulus
        return 0 if stimulus is None else stimulus.frame(step, step + 1 if frames is None else frames)

    def frames_entering(self, until: int | None = None) -> set[int | str]:
        """The distinct frames the pre-net runs on in a run of this Plan (up to step `until`): those its input
        edges carry, each shown at the step it fires less its delay; at least one (a run in which nothing
        enters still runs the pre-net, on the first frame)."""
        last = self.steps if until is None else until
        shown = {self.shown(c.reads) for u in self.updates for c in u.calls if c.edge.is_input and c.reads <= last}
        return shown or {self.shown(0)}

    @property
    def calls(self) -> int:
        return sum(len(u.calls) for updates in self.schedule for u in updates)

    @property
    def unshared(self) -> Size:
        """The size of this program with a fresh set of weights (and norm) for every call it makes, and a fresh
        cell for every update that runs one."""
        return self.family.unshared(self)

    @property
    def updates(self) -> list[Update]:
        return [u for updates in self.schedule for u in updates]

    def __str__(self) -> str:
        spec = self.spec
        what = {"final": f"readout {spec.readout.label} at {_steps(self.readout_steps)}",
                "anytime": f"readout {spec.readout.label} at every step", "none": "every area at every step",
                "features": f"features {', '.join(f'{a}.t{t}' for a, t in sorted(self.targets))}"}
        lines = [f"Plan for {spec.name}: {self.steps} steps, {what[self.prune]}; "
                 f"{self.calls} of {self.naive_calls} edge calls run"]
        for step, updates in enumerate(self.schedule):
            for i, update in enumerate(updates):
                terms = _update_text(update, step)
                lines.append(f"{f'step {step}:' if i == 0 else '':9s} {update.area} = {terms}")
        return "\n".join(lines)


def _update_text(update: Update, step: int) -> str:
    """`A->B(A@0) + C->B(C@1)`; with modulating edges `(...) * (1 + g(...))`; with a cell `gru(..., B@1)`,
    and its named inputs `rgc(..., out_gate=A->B:gate(A@0))`."""
    drive = " + ".join(_term(c, step) for c in update.calls if c.edge.drives)
    gain = " + ".join(_term(c, step) for c in update.calls if c.edge.modulating)
    if gain:
        drive = f"({drive}) * (1 + g({gain}))"
    if update.cell is None:
        return drive
    state = f", {update.area}@{update.prev}" if update.prev is not None else ""
    inputs = dict.fromkeys(c.edge.into for c in update.calls if c.edge.into)  # in the order they come
    named = "".join(f", {name}=" + " + ".join(_term(c, step) for c in update.calls if c.edge.into == name)
                    for name in inputs)
    reused = f" [norm of step {update.cell_step}]" if update.cell_step != step else ""
    return f"{update.cell.name}({drive or '0'}{state}{named}){reused}"


def _term(call: Call, step: int) -> str:
    if call.source == INPUT:  # the frame shown now, or `delay` steps earlier
        source = INPUT if call.reads == step else f"{INPUT}@{call.reads}"
    else:  # a value of the source; under silence: computed, the zeros it holds while silent
        source = "0" if call.reads == ZEROS else f"{call.source}@{call.reads}"
    reused = f" [norm of step {call.norm_step}]" if call.norm_step != step else ""
    return f"{call.weights.name}({source}){reused}"


def _steps(steps: tuple[int, ...]) -> str:
    return ", ".join(map(str, steps))


def first_readout(timeline: Timeline, areas: tuple[str, ...]) -> int:
    """The first step at which every readout area holds a value (each does within the run)."""
    return max(timeline.versions[area][0] for area in areas)


def _plan_of_call_form(family: PlanFamily, analysis: Analysis, steps: int | None, prune: Keep,
               targets: frozenset[tuple[str, int]]) -> Plan:
    spec = analysis.spec
    total = spec.steps if steps is None else steps
    if total < 0:
        raise ValueError(f"steps must be >= 0, got {total}")
    if total > max(analysis.limits.steps, spec.steps):  # as a spec of that many steps would be
        raise ValueError(f"a run of {total:,} steps exceeds the limit of {analysis.limits.steps:,} steps that "
                         "specs are held to (build with limits=Limits(steps=N) to raise it)")
    timeline = analysis.timeline_for(total)
    areas = spec.readout.areas
    readout_steps = spec.readout_steps if steps is None else (total,)
    if prune == "features":
        for area, step in sorted(targets):
            if area not in spec.areas:
                raise ValueError(f"unknown area {area!r}; the areas are {', '.join(spec.areas)}")
            if not 0 <= step <= total or timeline.version(area, step) is None:
                first = analysis.timeline_for(max(total, spec.steps)).versions[area]
                raise ValueError(f"{area} holds no value at step {step}" + (
                    f" (it does from step {first[0]} on)" if first else " (signal never reaches it)"))
        wanted = {(a, timeline.version(a, t)) for a, t in targets}
    else:
        for area in areas:
            held = timeline.versions[area]  # under silence: computed, an area may hold zeros before signal comes
            first = held[0] if held else None
            if first is None or min(readout_steps) < first:
                raise ValueError(f"signal reaches {area!r} at step {first}; a run of {total} steps reads it out at "
                                 f"step {min(readout_steps)}, before it has any value" if first is not None else
                                 f"signal never reaches {area!r} within {total} steps")
        # anytime: from the first step at which every readout area holds a value
        read = range(first_readout(timeline, areas), total + 1) if prune == "anytime" else readout_steps
        wanted = {(area, timeline.version(area, r)) for area in areas for r in read}
    needed = None if prune == "none" else live(timeline, wanted, analysis.stateful)
    schedule = _schedule(analysis, timeline, needed, family.weight_sets, family.cell_sets)
    naive = sum(len(e.fires_until(total)) for e in analysis.edges)
    return Plan(total, prune, areas, readout_steps, schedule, naive, family,
                targets if prune == "features" else frozenset())


def _schedule(analysis: Analysis, timeline: Timeline, needed: set | None, sets: dict[str, WeightSet],
              cells: dict[str, CellSet]) -> tuple[tuple[Update, ...], ...]:
    """Each step's updates: every firing of the timeline (only those `needed` where not None), bound to the
    weight sets and cells that compute it."""
    last, policy = horizon(analysis), analysis.spec.defaults.beyond
    weights_at = WeightsAt(sets, last, policy)
    stateful = analysis.stateful
    schedule = []
    with collector_paused():  # one small object per call, none in a cycle
        for step, now in enumerate(timeline.updates):
            updates = []
            for target, firings in now.items():
                if needed is not None and (target, step) not in needed:
                    continue
                calls = []
                for edge, reads in firings:
                    wset, norm_step = weights_at(edge, step)
                    calls.append(Call(edge, wset, edge.source, reads, norm_step))
                cell = cells.get(target)
                if cell is None:
                    updates.append(Update(target, step, tuple(calls)))
                else:
                    prev = timeline.version(target, step - 1) if step and target in stateful else None
                    updates.append(Update(target, step, tuple(calls), cell, prev,
                                          cell_step(cell, step, last, policy)))
            schedule.append(tuple(updates))
    return tuple(schedule)
