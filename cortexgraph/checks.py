"""The checks of a spec that pydantic and the lowering cannot make: names that refer to each other, shapes,
ties, norms, the stimulus and time. Every problem is reported at once, located in the spec; what the checks
resolve on the way (shapes, the pre-net, the lowered edges and cells, the timeline) is handed to the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import Loc, Problem, did_you_mean, known_list
from .lowering import INPUT, AreaCell, Edge, Reporter, lower_cells, lower_edges, resolve_op
from .ops.norm_spec import BATCH_PER_STEP, NO_NORM, NormSpec
from .ops.op_params import Params, Shape, StemConvParams, resampling
from .ops.registry import OpDef
from .spec import Spec
from .time_checks import area_graph, check_linear_loops, check_same_step, check_time
from .timeline import Timeline, build_timeline


@dataclass(frozen=True)
class Limits:
    """Bounds against specs that would exhaust the machine; raise them on purpose only."""

    areas: int = 1_000
    edges: int = 20_000
    steps: int = 1_000
    channels: int = 16_384
    size: int = 4_096
    prenet: int = 64
    firings: int = 5_000_000  # edge x step pairs in the unrolled graph
    parameters: int = 4_000_000_000  # in the built model (16 GB as float32): checked by the Plan

    def replace(self, **changes: int) -> Limits:
        unknown = set(changes) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown limit {sorted(unknown)[0]!r}; known: {', '.join(self.__dataclass_fields__)}")
        return Limits(**{**self.__dict__, **changes})


class Checked(NamedTuple):
    """What the checks resolved of a spec with no errors."""

    edges: tuple[Edge, ...]
    shapes: dict[str, Shape]  # every area and INPUT
    prenet: list[tuple[OpDef, Params, Shape]]  # each layer: its op, validated parameters, output shape
    timeline: Timeline
    warnings: list[Problem]
    head_norm: NormSpec
    cells: dict[str, AreaCell]


class Checker(Reporter):
    """Checks a spec and its lowered edges (names that refer to each other, shapes, ties, time)."""

    def __init__(self, spec: Spec, limits: Limits, allow_imports: bool = False):
        super().__init__(spec.source)
        self.spec = spec
        self.limits = limits
        self.allow_imports = allow_imports

    def op_def(self, kind: str, ref: Any, loc: Loc) -> tuple[OpDef, Params] | None:
        return resolve_op(self, kind, ref, loc, self.allow_imports)

    def run(self) -> Checked:
        spec = self.spec
        self.check_limits()
        self.stop_if_errors()
        shapes: dict[str, Shape] = {name: (a.channels, *a.size) for name, a in spec.areas.items()}
        prenet = self.prenet()
        if prenet is not None:  # else unknown: the pre-net's problems are reported already
            shapes[INPUT] = prenet[-1][2] if prenet else (spec.input.channels, *spec.input.size)
        edges = lower_edges(self.spec, self, self.allow_imports)
        cells = lower_cells(spec, self)
        self.check_edges(edges, shapes)
        self.check_drive(edges, cells)
        check_linear_loops(self, edges, cells)
        self.check_ties(edges, shapes)
        check_same_step(self, edges)
        self.check_settings()
        self.check_stimulus(edges)
        head_norm = self.head_norm(edges)
        for area, cell in cells.items():
            norm = getattr(cell.params, "norm", None)
            if norm is not None:
                self.check_norm(norm, spec.areas[area].channels, ("areas", area, "cell"))
        self.stop_if_errors()
        if sum(len(e.steps) for e in edges) > self.limits.firings:
            self.error(("steps",), f"the unrolled graph has more than {self.limits.firings:,} edge firings",
                       "raise the 'firings' limit if you mean it")
            self.stop_if_errors()
        graph = area_graph(spec, edges)
        running = frozenset(a for a, c in cells.items() if c.runs_every_step)
        timeline = build_timeline(edges, list(spec.areas), spec.steps, running, spec.silence)
        stateful = frozenset(a for a, c in cells.items() if c.reads_state)
        check_time(self, spec, edges, graph, timeline, stateful)
        self.stop_if_errors()
        warnings = [p for p in self.problems if p.severity == "warning"]
        return Checked(edges, shapes, prenet or [], timeline, warnings, head_norm, cells)

    def head_norm(self, edges: tuple[Edge, ...]) -> NormSpec:
        """The post-net's norm: as the spec says, else per_step where a pre-activation op writes the readout
        area. Such ops leave their output unnormalised, and its scale grows with the steps (a pre-activation
        network ends in a BN-ReLU); one norm per readout step is time-specific normalisation for the head."""
        readout = self.spec.readout
        areas = [area for area in readout.areas if area in self.spec.areas]
        if readout.head.norm is not None:
            if readout.head.norm.kind == "group":
                for channels in sorted({self.spec.areas[area].channels for area in areas}):
                    self.check_norm(readout.head.norm, channels, ("readout", "head", "norm"))
            return readout.head.norm
        writers = [e.definition for e in edges if e.target in areas and e.definition is not None]
        return BATCH_PER_STEP if any(op.preactivation for op in writers) else NO_NORM

    # limits first: nothing expensive runs on a spec that exceeds them
    def check_limits(self) -> None:
        spec, lim = self.spec, self.limits
        counts = [("areas", len(spec.areas), lim.areas, ("areas",)),
                  ("steps", spec.steps, lim.steps, ("steps",)),
                  ("prenet", len(spec.prenet), lim.prenet, ("prenet",)),
                  ("edges", len(spec.edges) + sum(map(len, spec.transitions.values()))
                   + sum(sum(map(len, p.transitions.values())) for p in spec.schedule), lim.edges, ())]
        for name, value, bound, loc in counts:
            if value > bound:
                self.error(loc, f"{value:,} {name} exceed the limit of {bound:,}",
                           f"raise it with --limit {name}=N (or Limits({name}=N)) if you mean it")
        sized = [(("input",), spec.input.channels, spec.input.size)]
        sized += [(("areas", n), a.channels, a.size) for n, a in spec.areas.items()]
        for loc, channels, size in sized:
            if channels > lim.channels:
                self.error(loc + ("channels",), f"{channels:,} channels exceed the limit of {lim.channels:,}",
                           "raise it with --limit channels=N if you mean it")
            if max(size) > lim.size:
                self.error(loc + ("size",), f"size {max(size):,} exceeds the limit of {lim.size:,}",
                           "raise it with --limit size=N if you mean it")
        for i, op in enumerate(spec.prenet):
            out = op.params.get("out")
            if isinstance(out, int) and out > lim.channels:
                self.error(("prenet", i), f"{out:,} channels exceed the limit of {lim.channels:,}")

    def prenet(self) -> list[tuple[OpDef, Params, Shape]] | None:
        shape: Shape = (self.spec.input.channels, *self.spec.input.size)
        layers: list[tuple[OpDef, Params, Shape]] = []
        for i, ref in enumerate(self.spec.prenet):
            found = self.op_def("prenet", ref, ("prenet", i))
            if found is None:
                return None
            op, params = found
            shape = op.infer(shape, params)
            if min(shape[1:]) < 1:
                self.error(("prenet", i), f"layer {i} ({ref.name}) shrinks the image to nothing",
                           "use a larger input or smaller strides")
                return None
            if isinstance(params, StemConvParams):
                self.check_norm(params.norm_kind, shape[0], ("prenet", i, ref.name, "norm"))
            layers.append((op, params, shape))
        return layers

    def check_edges(self, edges: tuple[Edge, ...], shapes: dict[str, Shape]) -> None:
        areas = list(self.spec.areas)
        for edge in edges:
            loc = edge.loc
            ok = True
            if edge.is_input and INPUT not in shapes:
                ok = False
            elif edge.source not in shapes:
                self.error(_end(loc, "from", 1), f"unknown area {edge.source!r}",
                           did_you_mean(edge.source, areas) or f"known: {known_list(areas)}", key=loc[0] != "edges")
                ok = False
            if edge.target not in self.spec.areas:
                msg = ("the pre-net's output ('input') cannot receive edges" if edge.target == INPUT
                       else f"unknown area {edge.target!r}")
                hint = did_you_mean(edge.target, areas) or f"known: {known_list(areas)}"
                self.error(_end(loc, "to", 2) if loc[0] != "inputs" else loc, msg, hint, key=loc[0] != "edges")
                ok = False
            self.check_steps(edge)
            if not ok:
                continue
            src, dst = shapes[edge.source], shapes[edge.target]
            if resampling(src, dst) is None:
                self.error(loc, f"sizes {src[1]}x{src[2]} ({edge.source}) and {dst[1]}x{dst[2]} ({edge.target}) "
                                "do not differ by one integer factor",
                           "connected areas must be the same size, or one a whole multiple of the other in both sides")
                continue
            op = edge.definition
            if edge.is_input and edge.passes_through and src != dst:
                self.error(loc, f"{edge.target!r} is {_shape(dst)} but the pre-net's output is {_shape(src)}",
                           "change the pre-net (e.g. a conv with the area's channels) or inject with an op")
            elif op is not None:
                why = op.check(src, dst) or (op.fits(src, dst, edge.params) if op.fits and edge.params else None)
                if why:
                    self.error(loc, *why)
                elif not (edge.is_input and edge.passes_through):
                    self.check_norm(edge.norm, dst[0], _norm_loc(edge, self.source), op)

    def check_norm(self, norm: NormSpec, channels: int, loc: Loc, op: OpDef | None = None) -> None:
        """A group norm's groups divide the channels; a layer norm needs an op whose norms sit at its output."""
        if norm.kind == "group" and channels % norm.groups:
            self.error(loc, f"a group norm of {norm.groups} groups cannot split {channels} channels",
                       f"choose groups that divide {channels}")
        if norm.kind == "layer" and op is not None and not op.layer_norm:
            self.error(loc, f"op {op.name!r} has norms inside it at more than one size, so a layer norm (over "
                            "channels, height and width) does not fit it", "use a batch, group or instance norm")

    def check_steps(self, edge: Edge) -> None:
        loc, rule = edge.loc, edge.rule
        at = loc + ("at",) if loc[0] != "schedule" else loc
        earliest = rule.earliest()
        if earliest is not None and earliest < edge.first_step:  # a step before the edge's first
            if edge.is_input:
                self.error(at, f"an input edge of delay {edge.delay} carries the frame shown {edge.delay} steps "
                               f"earlier, so it cannot fire before step {edge.delay} (it is written to fire at step "
                               f"{earliest})",
                           f"let it fire from step {edge.delay} ('at: all' does), or lower its delay")
            else:
                self.error(at, "edges fire from step 1; step 0 is when the pre-net's output arrives",
                           "'once' and step 0 are for inputs and for zero-delay edges, delay: 0")
            return
        beyond = rule.beyond(self.spec.steps)
        if beyond:
            self.warn(at, f"step {beyond[0]} lies beyond the spec's {self.spec.steps} steps",
                      "it fires only in longer runs")
        if isinstance(edge.share, tuple):
            grouped = [s for group in edge.share for s in group]
            share_loc = loc + ("share",) if loc[0] != "schedule" else loc
            if len(grouped) != len(set(grouped)):
                self.error(share_loc, "a step appears in more than one share group", "each step belongs to one group")
            missing = sorted(set(edge.steps) - set(grouped))
            extra = sorted(set(grouped) - set(edge.steps))
            if missing:
                self.error(share_loc, f"the share groups leave out step {missing[0]}, at which the edge fires",
                           "every firing step belongs to exactly one group")
            if extra:
                self.error(share_loc, f"share group step {extra[0]} is not a step at which the edge fires",
                           f"it fires at {_steps(edge.steps)}")

    def check_ties(self, edges: tuple[Edge, ...], shapes: dict[str, Shape]) -> None:
        by_name = {e.name: e for e in edges}
        for edge in edges:
            if edge.tie is None:
                continue
            loc = edge.loc + ("tie",)
            target = by_name.get(edge.tie)
            if target is None:
                self.error(loc, f"tie to unknown edge {edge.tie!r}",
                           did_you_mean(edge.tie, by_name) or f"edges: {known_list(by_name)}")
                continue
            if target is edge:
                self.error(loc, "an edge cannot tie to itself")
                continue
            if target.tie is not None:
                self.error(loc, f"{edge.tie!r} is itself tied to {target.tie!r}", f"tie to {target.tie!r} instead")
                continue
            if target.share != "time" or edge.share != "time":
                self.error(loc, "tied edges share one set of weights across all their steps",
                           f"set share: time on {edge.name!r} and {target.name!r}")
                continue
            op_a, op_b = edge.definition, target.definition
            if op_a is None or op_b is None or edge.source not in shapes or target.source not in shapes:
                continue  # reported already
            if edge.target not in shapes or target.target not in shapes:
                continue
            key_a = op_a.tie_key(op_a, shapes[edge.source], shapes[edge.target], edge.params)
            key_b = op_b.tie_key(op_b, shapes[target.source], shapes[target.target], target.params)
            if key_a != key_b:
                self.error(loc, f"cannot tie {edge.name!r} ({_describe(edge, shapes)}) to {target.name!r} "
                                f"({_describe(target, shapes)}): their weights differ in shape",
                           "tied edges need the same op, parameters and channels")

    def check_drive(self, edges: tuple[Edge, ...], cells: dict[str, AreaCell]) -> None:
        """Modulating edges scale a drive: an area they reach needs a driving edge too. An edge `into` a cell's
        input needs a cell that has that input."""
        driven = {e.target for e in edges if e.drives}
        for edge in edges:
            if edge.into is not None:
                self.check_into(edge, cells.get(edge.target), edge.target in driven)
            if edge.modulating and edge.target not in driven and edge.target in self.spec.areas:
                cell = cells.get(edge.target)
                what = f"its {cell.name} cell runs" if cell is not None and not cell.is_sum else "it is"
                self.error(edge.loc + ("modulating",) if edge.loc[0] == "edges" else edge.loc,
                           f"area {edge.target!r} is fed only by modulating edges, so {what} on a drive of 0",
                           "add a driving edge into it, or drop 'modulating' from one of its edges")

    def check_into(self, edge: Edge, cell: AreaCell | None, driven: bool) -> None:
        loc = edge.loc + ("into",) if edge.loc + ("into",) in self.source.values else edge.loc
        if cell is None:
            return  # an unknown area or cell: reported already
        inputs = cell.inputs
        if edge.modulating:
            self.error(loc, f"edge {edge.name!r} both modulates the drive and goes into the cell's {edge.into!r}",
                       "drop 'modulating' or 'into'")
        elif edge.into not in inputs:
            has = (f"its inputs besides the drive: {', '.join(inputs)}" if inputs else
                   "it has no input besides the drive")
            self.error(loc, f"edge {edge.name!r} goes into {edge.into!r}, which area {edge.target!r}'s {cell.name} "
                            f"cell does not have", f"{has}; the rgc cell has out_gate")
        elif not driven:
            self.error(loc, f"area {edge.target!r} is fed only through its cell's {edge.into!r}, so its {cell.name} "
                            "cell runs on a drive of 0", "add a driving edge into it")

    def check_stimulus(self, edges: tuple[Edge, ...]) -> None:
        """An image shown only at steps no input edge fires at is never seen."""
        stimulus = self.spec.input.stimulus
        if stimulus is None or stimulus.show is None:
            return
        shown = set(stimulus.show.resolve(self.spec.steps, first=0))
        entering = {t - e.delay for e in edges if e.is_input for t in e.steps}  # the steps whose frames enter
        if not shown & entering:
            self.warn(("input", "stimulus", "show"), f"the image is never shown at a step an input edge fires "
                      f"(shown at {_steps(tuple(sorted(shown))) or 'no step'}, entering at "
                      f"{_steps(tuple(sorted(entering))) or 'no step'}): the network sees only the {stimulus.then}",
                      "show it at a step its input edges fire ('inputs')")

    def check_settings(self) -> None:
        spec = self.spec
        horizon = spec.defaults.horizon
        if horizon is not None and horizon < spec.steps and spec.defaults.beyond == "error":
            self.error(("defaults", "horizon"),
                       f"the norm horizon ({horizon}) is shorter than the {spec.steps} steps asked",
                       "set defaults.beyond: reuse_last to reuse the last step's norm, or raise the horizon")
        for i, area in enumerate(spec.readout.areas):
            if area not in spec.areas:
                self.error(spec.readout.area_loc(i), f"unknown area {area!r}",
                           did_you_mean(area, spec.areas) or f"known: {known_list(spec.areas)}")
        for step in spec.readout_steps:
            if step > spec.steps:
                self.error(("readout", "step"), f"readout step {step} is beyond the spec's {spec.steps} steps",
                           "read out at a step from 0 to 'steps'")
        loss, n = spec.readout.loss, len(spec.readout_steps)
        if isinstance(loss, list) and len(loss) != n:
            self.error(("readout", "loss"), f"{len(loss)} loss weights for {n} readout step{'s' * (n > 1)}",
                       "give one weight for each step in readout.step, in its order")
        elif isinstance(loss, list) and not sum(loss):
            self.error(("readout", "loss"), "every loss weight is 0", "weigh at least one readout step")
        activity = spec.readout.activity
        for i, area in enumerate(activity.areas or [] if activity else []):
            if area not in spec.areas:
                self.error(("readout", "activity", "areas", i), f"unknown area {area!r}",
                           did_you_mean(area, spec.areas) or f"known: {known_list(spec.areas)}")
        if spec.readout.decoder == "weighted" and loss != "prediction":
            self.error(("readout", "decoder"), "a learned weighted mean is trained by the loss of the prediction, "
                       f"but readout.loss weighs the steps' own losses ({loss}), so its weights would never learn",
                       "use loss: prediction with decoder: weighted, or another decoder")

def _end(loc: Loc, name: str, matrix_index: int) -> Loc:
    """Where an edge's endpoint is written: `edges[i].from`, or the matrix key."""
    if loc[0] == "edges":
        return loc + (name,)
    if loc[0] == "transitions":
        return loc[: 1 + matrix_index]
    return loc[: 3 + matrix_index]  # schedule[i].transitions.<from>.<to>


def _norm_loc(edge: Edge, source: Any) -> Loc:
    """Where an edge's norm is written (its `norm` field), else the edge."""
    where = edge.loc + ("norm",)
    return where if where in source.values else edge.loc


def _steps(steps: tuple[int, ...]) -> str:
    return ", ".join(map(str, steps[:8])) + (", ..." if len(steps) > 8 else "")


def _shape(shape: Shape) -> str:
    return "x".join(map(str, shape))


def _describe(edge: Edge, shapes: dict[str, Shape]) -> str:
    return f"{edge.op}, {_shape(shapes[edge.source])} -> {_shape(shapes[edge.target])}"
