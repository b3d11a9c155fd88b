"""How big a model of a spec is, counted before anything is built.

Every built-in op says how many weights it holds (`OpDef.count`), so a spec's
parameters, its norms' running statistics and the bytes they take are known
from the analysis alone: `cortexgraph validate` reports them without torch,
and a spec too big for its limit is refused before any memory is spent. An op
registered without `count` is measured instead, once per shape, on the meta
device (no memory, no arithmetic).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .analysis import Analysis, Edge
from .errors import Problem, SpecError
from .ops.cell_registry import CellDef
from .ops.norm_spec import NO_NORM, NormSpec
from .ops.op_params import Shape, StemConvParams, Weights
from .ops.registry import OpDef
from .units import format_bytes

SHARED_BATCH = NormSpec(time="shared")  # the pre-net's norms

FLOAT_BYTES = 4  # weights and statistics are float32 when built


@dataclass(frozen=True)
class Size:
    parameters: int = 0
    statistics: int = 0  # the norms' running means and variances

    def __add__(self, other: Size) -> Size:
        return Size(self.parameters + other.parameters, self.statistics + other.statistics)

    @property
    def bytes(self) -> int:
        return FLOAT_BYTES * (self.parameters + self.statistics)


def _norms(channels: int, norm: NormSpec, steps: int, spatial: int = 1) -> Size:
    """`norm`'s norms over `channels`, for weights that run at `steps` steps: 2 parameters a channel (a layer
    norm's are element-wise: a channel's `spatial` pixels each), and a batch norm's 2 running statistics."""
    count = {"per_step": max(steps, 1), "shared": 1, "none": 0}[norm.policy] * channels
    count *= spatial if norm.kind == "layer" else 1
    return Size(2 * count, 2 * count if norm.keeps_statistics else 0)


def edge_weights(analysis: Analysis, edge: Edge) -> Weights:
    return weights(edge.definition, analysis.shapes[edge.source], analysis.shapes[edge.target], edge.params)


def weight_set_size(w: Weights, norm: NormSpec, steps: int, tied: bool, spatial: int = 1) -> Size:
    """One weight set of an edge whose op holds `w`, its weights running at `steps` steps under `norm`
    (`spatial`: the pixels of the output a layer norm normalises); a tied set's borrowed weights are not its
    own (they count under their owner)."""
    return Size(w.own + (0 if tied else w.tied)) + _norms(w.norm_channels, norm, steps, spatial)


def _has_step_norms(w: Weights, norm: NormSpec) -> bool:
    """Whether weights `w` under `norm` have a norm for each step (so a step past the last made lacks one)."""
    return norm.policy == "per_step" and norm.kind != "none" and w.norm_channels > 0


def edge_has_step_norms(analysis: Analysis, edge: Edge) -> bool:
    return _has_step_norms(edge_weights(analysis, edge), edge.norm)


def cell_has_step_norms(analysis: Analysis, area: str) -> bool:
    cell = analysis.cells[area]
    weights = cell_weights(cell.definition, analysis.shapes[area], cell.params)
    return _has_step_norms(weights, _cell_norm(cell))


def _cell_norm(cell: Any) -> NormSpec:
    """An area's cell's norm: its `norm` where it has one (act, conv), else none."""
    return getattr(cell.params, "norm", None) or NO_NORM


def edge_set_size(analysis: Analysis, edge: Edge, steps: int, tied: bool) -> Size:
    """One weight set of `edge`, running at `steps` steps."""
    _, height, width = analysis.shapes[edge.target]
    return weight_set_size(edge_weights(analysis, edge), edge.norm, steps, tied, height * width)


def cell_size(analysis: Analysis, area: str, steps: int) -> Size:
    """An area's cell, its norms running at `steps` steps (one each under its `norm: per_step`)."""
    cell = analysis.cells[area]
    _, height, width = analysis.shapes[area]
    w = cell_weights(cell.definition, analysis.shapes[area], cell.params)
    return weight_set_size(w, _cell_norm(cell), steps, False, height * width)


def cell_weights(cell: CellDef, shape: Shape, params: Any) -> Weights:
    return cell.count(shape, params) if cell.count is not None else _measured_cell(cell, shape, params)


@lru_cache(maxsize=256)
def _measured_cell(cell: CellDef, shape: Shape, params: Any) -> Weights:
    """A cell without `count`, built on the meta device and counted (norms' channels at one step)."""
    import torch

    from .ops.cells import CellContext
    from .ops.norms import NORM_LAYERS

    ctx = CellContext(cell.name, shape, params, norm_steps=(0,))
    with torch.device("meta"):
        module = cell.load()(ctx)
    numel = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    norms = sum(numel(m) for m in module.modules() if isinstance(m, NORM_LAYERS))
    norm = getattr(params, "norm", None)
    per_channel = 2 * (shape[1] * shape[2] if norm is not None and norm.kind == "layer" else 1)
    return Weights(own=numel(module) - norms, norm_channels=norms // per_channel)


def prenet_size(analysis: Analysis) -> Size:
    spec = analysis.spec
    shape: Shape = (spec.input.channels, *spec.input.size)
    total = Size()
    for op, params, out in analysis.prenet:
        w = weights(op, shape, out, params)
        kind = params.norm_kind if isinstance(params, StemConvParams) else SHARED_BATCH
        total = total + Size(w.own + w.tied) + _norms(w.norm_channels, kind, 1, out[1] * out[2])
        shape = out
    return total


def head_size(analysis: Analysis) -> Size:
    spec = analysis.spec
    head = spec.readout.head
    total = Size()
    for area in spec.readout.areas:
        channels, height, width = analysis.shapes[area]
        features = channels if head.pool != "none" else channels * height * width
        total = total + Size(features * head.classes) + _norms(channels, analysis.head_norm,
                                                               len(spec.readout_steps), height * width)
    weighted = len(spec.readout_steps) if spec.readout.decoder == "weighted" else 0  # the decoder's weights
    return total + Size(head.classes * head.bias + weighted)


def unshared_size(analysis: Analysis, calls: Iterable[str]) -> Size:
    """The same network with a fresh set of weights, and one norm, for every call it makes (`calls`: the
    edge of each call of a Plan): the paper's "unshared" comparison. Ties are unshared too."""
    per_edge: dict[str, Size] = {}
    total = prenet_size(analysis) + head_size(analysis)
    for name in calls:
        if name not in per_edge:
            edge = analysis.edge(name)
            per_edge[name] = edge_set_size(analysis, edge, 1, tied=False)
        total = total + per_edge[name]
    return total


def weights(op: OpDef, src: Shape, dst: Shape, params: Any) -> Weights:
    return op.count(src, dst, params) if op.count is not None else _measured(op, src, dst, params)


@lru_cache(maxsize=1024)
def _measured(op: OpDef, src: Shape, dst: Shape, params: Any) -> Weights:
    """An op without `count`, built once for one step on the meta device and counted."""
    import torch
    from torch import nn

    from .ops.layers import OpContext, tieable_parts

    ctx = OpContext(op.name, src, dst, params, norm_policy="shared", norm_steps=(1,))
    with torch.device("meta"):
        module = op.load()(ctx)
    numel = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    norms = sum(numel(m) for m in module.modules() if isinstance(m, nn.BatchNorm2d))
    tied = sum(numel(getattr(module, name)) for name in tieable_parts(module))
    return Weights(tied=tied, own=numel(module) - norms - tied, norm_channels=norms // 2)


def check_size(analysis: Analysis, total: Size, by_edge: dict[str, Size]) -> None:
    """Refuse a model above the parameter limit, before it is built; the error points at its largest part
    (an edge, the pre-net or the head)."""
    limit = analysis.limits.parameters
    if total.parameters <= limit:
        return
    spec = analysis.spec
    parts = {f"edge {name}": (size, analysis.edge(name).loc) for name, size in by_edge.items()}
    parts["the pre-net"] = (prenet_size(analysis), ("prenet",))
    parts["the head"] = (head_size(analysis), ("readout", "head", "classes"))
    largest = max(parts, key=lambda part: parts[part][0].parameters)
    size, loc = parts[largest]
    pooled = spec.readout.head.pool != "none"
    hint = ("fewer classes" + ("" if pooled else ", a pooled head (pool: avg)") if largest == "the head" else
            "share weights (share: time), narrow the areas")
    raise SpecError([spec.source.place(Problem(
        loc, f"the model would hold {total.parameters:,} parameters ({format_bytes(total.bytes)} with its norms' "
             f"statistics, as float32), above the limit of {limit:,}; {largest} holds {size.parameters:,}",
        f"{hint}, or raise the limit with --limit parameters=N (Limits(parameters=N)) if you mean it"))])


def machine_memory() -> int | None:
    """This machine's memory in bytes (None where the system does not say, as on Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
