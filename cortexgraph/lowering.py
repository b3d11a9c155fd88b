"""Spec -> Edges: the three notations (edge list, transition matrix, schedule of matrices) lowered to one
list of `Edge`s, each op looked up and its parameters validated. Everything after this stage sees only
that list; the analysis checks it (names that refer to each other, shapes, ties, time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .errors import Loc, Problem, SpecError, format_path
from .located import located_errors
from .ops.cell_registry import ACT, CELL_ACTIVATION, CellDef, lookup_cell
from .ops.norm_spec import NormSpec
from .ops.op_params import Params
from .ops.registry import OpDef, UnknownOp, lookup
from .source import SourceMap
from .spec import Spec
from .step_rules import StepRule

INPUT = "input"  # the pre-net's output, a source present at every step
ZEROS = -1  # the step a call reads where its source is silent and `silence: computed` runs it on zeros


def usual_delay(source: str) -> int:
    """An edge's delay where the spec gives none: 0 from the input (the frame shown now), else 1."""
    return 0 if source == INPUT else 1


def first_step(source: str, delay: int, computed: bool = False) -> int:
    """The first step an edge can fire at: an input edge's delay (the first frame it can read is step 0's);
    0 for same-step (zero-delay) edges, and for every edge where silent sources are computed on zeros
    (`silence: computed`: at step 0 it runs on the zeros its source held before); else 1 (step 0 belongs
    to the pre-net's output)."""
    if source == INPUT:
        return delay
    return 0 if delay == 0 or computed else 1


@dataclass(frozen=True)
class Edge:
    """One transition in the internal form every notation lowers to."""

    name: str
    source: str  # an area, or INPUT
    target: str
    op: str  # the canonical op name
    params: Params | None  # validated; None where the op is unknown
    steps: tuple[int, ...]  # when it fires, within the spec's steps
    delay: int
    first_step: int  # the first step it can fire at (`first_step`)
    share: str | tuple[tuple[int, ...], ...]
    norm: NormSpec  # its norm policy and kind
    tie: str | None
    rule: StepRule = field(compare=False)  # the written rule, to extend past the spec's steps
    loc: Loc = field(compare=False, default=())
    written: str = field(compare=False, default="")  # the op's name as the spec wrote it (maybe an alias)
    activation: str = "relu"  # the op's nonlinearity (none, with norm none: a linear edge, which can inhibit)
    modulating: bool = False  # its contributions scale the target's drive (1 + g(M)) instead of adding to it
    into: str | None = None  # a named input of the target's cell that its contributions add into, not the drive
    definition: OpDef | None = field(compare=False, default=None, repr=False)  # its op, resolved (None: unknown)

    @property
    def drives(self) -> bool:
        """Its contributions add into the target's drive (neither modulating nor into a cell's input)."""
        return not self.modulating and self.into is None

    @property
    def is_input(self) -> bool:
        return self.source == INPUT

    @property
    def is_linear(self) -> bool:
        """Its contribution is linear (affine) in its source's value: no activation, or an op without one."""
        return self.activation == "none" or (self.definition is not None and self.definition.linear)

    @property
    def passes_through(self) -> bool:
        """Its op hands the source on unchanged (`identity`): no weights, no norm, no activation."""
        return self.definition is not None and self.definition.passes_through

    @property
    def usual_delay(self) -> int:
        """The delay where the spec gives none: 0 from the input (the frame shown now), else 1."""
        return usual_delay(self.source)

    def fires_until(self, last: int) -> tuple[int, ...]:
        return tuple(self.rule.resolve(last, first=self.first_step))


@dataclass(frozen=True)
class AreaCell:
    """An area's cell, looked up and its parameters validated (see `ops/cell_registry.py`)."""

    area: str
    name: str
    params: Params
    runs_every_step: bool  # False for `sum`, which updates where something fires
    reads_state: bool  # its new value depends on its previous one
    modulation: str  # g in the gain 1 + g(M) of modulating edges: identity or tanh
    activation: str  # its `act`, where it has one (relu unless given)
    nonlinearity: str  # what makes it nonlinear ("none": it is linear; see CellDef)
    inputs: tuple[str, ...] = ()  # its named inputs besides the drive, which edges reach with `into`
    definition: CellDef | None = field(compare=False, default=None, repr=False)  # its cell, resolved

    @property
    def is_sum(self) -> bool:
        return self.name == "sum"


def fires_throughout(edge: Edge, steps: int) -> bool:
    """Whether `edge` fires at every step it can within `steps` (from its first step on)."""
    return edge.steps == tuple(range(edge.first_step, steps + 1))


def every_step(edge: Edge, steps: int) -> bool:
    """Whether `edge` is an edge between areas that fires at every step it can (it is then drawn and described
    without its steps)."""
    return not edge.is_input and fires_throughout(edge, steps)


class Reporter:
    """Collects a spec's problems, located; the first stage to find errors stops with all of them at once."""

    def __init__(self, source: SourceMap):
        self.source = source
        self.problems: list[Problem] = []

    def error(self, loc: Loc, message: str, hint: str | None = None, key: bool = False) -> None:
        self.problems.append(self.source.place(Problem(loc, message, hint), key=key))

    def warn(self, loc: Loc, message: str, hint: str | None = None) -> None:
        self.problems.append(self.source.place(Problem(loc, message, hint, severity="warning")))

    def stop_if_errors(self) -> None:
        if any(p.severity == "error" for p in self.problems):
            raise SpecError(self.problems)


def resolve_op(report: Reporter, kind: str, ref: Any, loc: Loc,
               allow_imports: bool = False) -> tuple[OpDef, Params] | None:
    """The registered op a spec names, with its parameters validated; None, the problem reported, if not."""
    try:
        op = lookup(kind, ref.name, allow_imports)
    except UnknownOp as exc:
        report.error(loc, exc.message, exc.hint)
        return None
    try:
        return op, op.params.model_validate(ref.params)
    except ValidationError as exc:
        report.problems.extend(located_errors(exc, report.source, loc + (ref.name,), op.params))
        return None


def lower_edges(spec: Spec, report: Reporter, allow_imports: bool = False) -> tuple[Edge, ...]:
    """Every notation's edges as `Edge`s, each with its op's definition where the op is known; problems go
    to `report` (an edge defined twice, a phase's edge that changes, an unknown op or bad parameters)."""
    defaults = spec.defaults
    found: dict[str, Edge] = {}

    def add(name: str, source: str, target: str, props: Any, rule: StepRule, loc: Loc, op_loc: Loc) -> None:
        if name in found:
            first, again = sorted([found[name].loc, loc], key=report.source.locate)
            report.error(again, f"edge {name!r} is defined twice (first at {format_path(first)})",
                         "give one of them a distinct 'name'")
            return
        delay = getattr(props, "delay", None)
        delay = usual_delay(source) if delay is None else delay
        first = first_step(source, delay, spec.silence == "computed")
        resolved = resolve_op(report, "transition", props.op, op_loc, allow_imports)
        op, params = resolved if resolved else (None, None)
        edge = Edge(
            name=name, source=source, target=target, op=op.name if op else props.op.name, params=params,
            steps=tuple(rule.resolve(spec.steps, first)), delay=delay, first_step=first,
            share=getattr(props, "share", None) or defaults.share,
            norm=getattr(props, "norm", None) or defaults.norm,
            tie=getattr(props, "tie", None), rule=rule, loc=loc, written=props.op.name,
            activation=getattr(props, "activation", None) or defaults.activation,
            modulating=getattr(props, "modulating", False), into=getattr(props, "into", None), definition=op)
        found[name] = edge

    def op_loc(loc: Loc) -> Loc:
        return loc + ("op",) if (loc + ("op",)) in report.source.values else loc

    for area, rule in spec.inputs.items():
        loc = ("inputs", area)
        add(f"{INPUT}->{area}", INPUT, area, rule, rule.at, loc, op_loc(loc))
    for i, e in enumerate(spec.edges):
        loc = ("edges", i)
        add(e.name or f"{e.from_}->{e.to}", e.from_, e.to, e, e.at, loc, loc + ("op",))
    for source, row in spec.transitions.items():
        for target, cell in row.items():
            loc = ("transitions", source, target)
            add(cell.name or f"{source}->{target}", source, target, cell, cell.at, loc, op_loc(loc))
    # A schedule's phases share an edge wherever they name the same transition the same way.
    merged: dict[str, tuple[Any, list[StepRule], Loc, str, str]] = {}
    for i, phase in enumerate(spec.schedule):
        for source, row in phase.transitions.items():
            for target, cell in row.items():
                loc = ("schedule", i, "transitions", source, target)
                if "at" in cell.model_fields_set:
                    report.error(loc + ("at",), "a phase's transitions fire at the phase's steps",
                                 "set 'at' on the phase, or move this edge to the edge list")
                    continue
                name = cell.name or f"{source}->{target}"
                if name in merged:
                    first = merged[name]
                    if first[0] != cell or first[3:] != (source, target):
                        report.error(loc, f"edge {name!r} differs from its first use at {format_path(first[2])}",
                                     "a transition that changes between phases needs a distinct 'name'")
                        continue
                    first[1].append(phase.at)
                else:
                    merged[name] = (cell, [phase.at], loc, source, target)
    for name, (cell, rules, loc, source, target) in merged.items():
        add(name, source, target, cell, StepRule.union(rules), loc, op_loc(loc))
    return tuple(found.values())


def lower_cells(spec: Spec, report: Reporter) -> dict[str, AreaCell]:
    """Every area's cell, its parameters validated; problems go to `report` (an unknown cell, bad parameters)."""
    cells = {}
    for area, a in spec.areas.items():
        loc = ("areas", area, "cell")
        try:
            cell: CellDef = lookup_cell(a.cell.name)
        except UnknownOp as exc:
            report.error(loc, exc.message, exc.hint)
            continue
        try:
            params = cell.params.model_validate(a.cell.params)
        except ValidationError as exc:
            report.problems.extend(located_errors(exc, report.source, loc + (a.cell.name,), cell.params))
            continue
        act = getattr(params, "act", None) or CELL_ACTIVATION  # defaults.activation is the edges'
        nonlinearity = act if cell.nonlinearity == ACT else cell.nonlinearity
        cells[area] = AreaCell(area, cell.name, params, cell.runs_every_step, cell.reads_state, a.modulation, act,
                               nonlinearity, cell.inputs, cell)
    return cells
