"""Analysis -> the weights a model holds: its weight sets (one module each) and cells, and which of them each
call uses at each step.

A model's weights are fixed when it is built, from the spec's steps and horizon (`weight_sets`, `cell_sets`);
every Plan of the model reuses them, and a call past the horizon follows `defaults.beyond` (reuse the last, or
refuse: `WeightsAt`, `cell_step`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .analysis import Analysis, Edge
from .sizes import Size, cell_has_step_norms, cell_size, edge_has_step_norms, edge_set_size, head_size, prenet_size


class BeyondHorizonError(ValueError):
    """A run asked for steps that per-step weights or norms were not built for (`beyond: error`)."""


@dataclass(frozen=True)
class WeightSet:
    """One set of weights, with the norms that go with it; one module in the model."""

    edge: str  # the edge that owns it
    key: str | None  # "t<first step>" for per-step or grouped weights; None when shared across time
    steps: tuple[int, ...]  # the steps at which it computes, up to the horizon: its per-step norms
    tie: str | None = None  # path of the set whose weights it uses
    size: Size = Size()  # its parameters and norm statistics (borrowed weights not counted)
    per_step: bool = True  # it has a norm per step (else one set of weights and norms serves every step)

    @property
    def name(self) -> str:
        """The edge, and the step it starts at where it has a set of its own: `V1->V2`, `S1->S1.t1`."""
        return self.edge + (f".{self.key}" if self.key else "")

    @property
    def path(self) -> str:
        """Where its module sits in the model: `edges.V1->V2` or `edges.S1->S1.t1`."""
        return f"edges.{self.name}"


@dataclass(frozen=True)
class CellSet:
    """An area's cell other than `sum`: one module in the model, its weights shared across time."""

    area: str
    name: str  # the registered cell
    steps: tuple[int, ...]  # the steps at which it runs, up to the horizon: its per-step norms
    size: Size = Size()
    per_step: bool = True  # it has a norm per step (else it serves every step as it is)

    @property
    def path(self) -> str:
        return f"cells.{self.area}"


def horizon(analysis: Analysis) -> int:
    spec = analysis.spec
    return spec.defaults.horizon or spec.steps


def weight_sets(analysis: Analysis) -> dict[str, WeightSet]:
    """The weights a model of this spec holds: one set per edge shared across time, per step, or per share group."""
    last = horizon(analysis)
    timeline = analysis.timeline_for(max(last, analysis.spec.steps))
    active: dict[str, list[int]] = {e.name: [] for e in analysis.edges}
    for step, now in enumerate(timeline.updates):
        for firings in now.values():
            for edge, _ in firings:
                active[edge.name].append(step)
    for name, steps in active.items():
        # Per-step weights and norms go up to the horizon; an edge that first computes past it gets
        # those of its first step, so that `beyond: reuse_last` has something to reuse.
        active[name] = [t for t in steps if t <= last] or steps[:1]
    tie_targets = {e.tie for e in analysis.edges if e.tie}
    sets: list[WeightSet] = []
    for edge in analysis.edges:
        steps = tuple(active[edge.name])
        if edge.share == "time":
            if steps or edge.name in tie_targets:  # a tie target holds weights even if it never runs itself
                tie = f"edges.{edge.tie}" if edge.tie else None
                sets.append(WeightSet(edge.name, None, steps, tie,
                                      edge_set_size(analysis, edge, len(steps), tie is not None),
                                      edge_has_step_norms(analysis, edge)))
        elif edge.share == "none":
            one = edge_set_size(analysis, edge, 1, False)
            sets += [WeightSet(edge.name, f"t{t}", (t,), size=one) for t in steps]
        else:
            for declared in edge.share:
                runs = tuple(t for t in declared if t in steps)
                if runs:
                    sets.append(WeightSet(edge.name, f"t{declared[0]}", runs,
                                          size=edge_set_size(analysis, edge, len(runs), False)))
    return {g.path: g for g in sets}


class WeightsAt:
    """Which weight set, and which step's norm, each call of an edge uses (the horizon policy too)."""

    def __init__(self, sets: dict[str, WeightSet], last: int, policy: str):
        self.last, self.policy = last, policy
        self.at: dict[str, dict[int, WeightSet]] = {}  # edge -> step -> its set
        self.latest: dict[str, WeightSet] = {}  # edge -> its set that runs latest
        for wset in sets.values():
            self.at.setdefault(wset.edge, {}).update(dict.fromkeys(wset.steps, wset))
            latest = self.latest.get(wset.edge)
            if latest is None or (wset.steps[-1:] or [0])[0] > (latest.steps[-1:] or [0])[0]:
                self.latest[wset.edge] = wset

    def __call__(self, edge: Edge, step: int) -> tuple[WeightSet, int]:
        wset = self.at.get(edge.name, {}).get(step)
        if wset is not None:
            return wset, step
        latest = self.latest.get(edge.name)
        if latest is not None and latest.key is None and not latest.per_step:
            return latest, step  # one set of weights and norms for every step: nothing is missing past the horizon
        if latest is not None and step > self.last and self.policy == "reuse_last":
            return latest, latest.steps[-1] if latest.steps else step
        if latest is None:  # it computes only past the steps the model was built for: nothing was made for it
            raise BeyondHorizonError(
                f"edge {edge.name!r} first computes at step {step}, past the steps its model was built for, so the "
                "model holds no weights for it; build the model with more steps or a later defaults.horizon")
        if step <= self.last:
            raise BeyondHorizonError(f"edge {edge.name!r} has no weights for step {step}")
        lacks = (f"has per-step weights or norms up to step {latest.steps[-1]}, not for step {step}" if latest.steps
                 else f"computes at no step up to the horizon ({self.last}), so it has no norm for step {step}")
        raise BeyondHorizonError(f"edge {edge.name!r} {lacks} (defaults.beyond: error); run at most {self.last} "
                                 "steps, or set defaults.horizon or beyond: reuse_last")


def cell_sets(analysis: Analysis) -> dict[str, CellSet]:
    """The cells a model of this spec holds (every area whose cell is not `sum`), with the steps at which
    each runs up to the horizon (its per-step norms; past it, `defaults.beyond`)."""
    last = horizon(analysis)
    timeline = analysis.timeline_for(max(last, analysis.spec.steps))
    cells = {}
    for area, cell in analysis.cells.items():
        if cell.is_sum:
            continue
        ran = timeline.versions[area]
        steps = tuple(t for t in ran if t <= last) or tuple(ran[:1])
        cells[area] = CellSet(area, cell.name, steps, cell_size(analysis, area, len(steps)),
                              cell_has_step_norms(analysis, area))
    return cells


def cell_step(cell: CellSet, step: int, last: int, policy: str) -> int:
    if step in cell.steps or not cell.steps or not cell.per_step:
        return step
    if step > last and policy == "reuse_last":
        return cell.steps[-1]
    raise BeyondHorizonError(f"area {cell.area!r}'s {cell.name} cell has per-step norms up to step "
                             f"{cell.steps[-1]}, not for step {step} (defaults.beyond: error); run at most {last} "
                             "steps, or set defaults.horizon or beyond: reuse_last")



def model_size(analysis: Analysis, sets: dict[str, WeightSet], cells: dict[str, CellSet]) -> Size:
    total = prenet_size(analysis) + head_size(analysis)
    for part in (*sets.values(), *cells.values()):
        total = total + part.size
    return total


def by_edge(sets: dict[str, WeightSet]) -> dict[str, Size]:
    sizes: dict[str, Size] = {}
    for wset in sets.values():
        sizes[wset.edge] = sizes.get(wset.edge, Size()) + wset.size
    return sizes


def parts(analysis: Analysis, sets: dict[str, WeightSet], cells: dict[str, CellSet]) -> dict[str, Size]:
    sizes = {"prenet": prenet_size(analysis), **{area: Size() for area in analysis.spec.areas}}
    for wset in sets.values():
        target = analysis.edges_by_name[wset.edge].target
        sizes[target] = sizes[target] + wset.size
    for area, cell in cells.items():
        sizes[area] = sizes[area] + cell.size
    sizes["head"] = head_size(analysis)
    return sizes
