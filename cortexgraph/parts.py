"""Plan -> the modules its parts are made of: the pre-net's layers, each weight set's op, each cell, the head.

`CortexNet` holds one of each; `summary.plan_flops` builds one of each kind alone, on the meta device, to
count its FLOPs. Weight sets that a spec ties share their weight-bearing parts (`tie`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .ops.cells import CellContext
from .ops.layers import ACTIVATIONS, OpContext, tieable_parts
from .ops.norm_spec import NormSpec
from .ops.norms import make_norm
from .ops.op_params import Shape
from .plan import CellSet, HeadSpec, Plan


class Head(nn.Module):
    """The post-net: norm and activation (where the plan has a head norm), pool, flatten, dropout, linear.

    Without a norm it ends as torchvision's ResNet does; with one, as a pre-activation ResNet
    does (BN-ReLU before pooling), one norm per readout step under `per_step`. Reading several
    areas, each has its own norm (`norm.<area>`) and is pooled; the linear layer reads their
    features concatenated in the order the spec lists the areas."""

    def __init__(self, shapes: dict[str, Shape], spec: HeadSpec, norm: NormSpec,
                 norm_steps: tuple[int, ...], activation: str, decoder: str = "mean"):
        super().__init__()
        norms = {area: make_norm(norm.policy, c, norm_steps, norm, (h, w)) for area, (c, h, w) in shapes.items()}
        self.norm = next(iter(norms.values())) if len(norms) == 1 else nn.ModuleDict(norms)
        self.act = ACTIVATIONS[activation if norm.policy != "none" else "none"](True)
        pools = {"avg": nn.AdaptiveAvgPool2d(1), "max": nn.AdaptiveMaxPool2d(1), "none": nn.Identity()}
        self.pool = pools[spec.pool]
        features = sum(c if spec.pool != "none" else c * h * w for c, h, w in shapes.values())
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout else nn.Identity()
        self.fc = nn.Linear(features, spec.classes, bias=spec.bias)
        self.last_step = norm_steps[-1]
        self.decoder = decoder
        if decoder == "weighted":  # softmax(step_weights): a mean at first
            self.step_weights = nn.Parameter(torch.zeros(len(norm_steps)))

    def forward(self, x: Tensor | tuple[Tensor, ...], step: int | None = None) -> Tensor:
        """Logits of an area's value (a tuple of values, one per area, where the head reads several); `step`
        picks the norm (the Plan's `head_norm_step`; default the last)."""
        step = self.last_step if step is None else step
        if isinstance(x, Tensor):
            features = self._features(self.norm, x, step)
        else:
            features = torch.cat([self._features(n, v, step) for n, v in zip(self.norm.values(), x)], 1)
        return self.fc(self.dropout(features))

    def decode(self, logits: list[Tensor]) -> Tensor:
        """One prediction of the logits at each of the spec's readout steps (in order), as the decoder says:
        their mean, the last, a learned weighted mean, or per sample the most confident step's."""
        if len(logits) == 1 or self.decoder == "last":
            return logits[-1]
        stacked = torch.stack(logits)  # (steps, batch, classes)
        if self.decoder == "weighted":
            return torch.einsum("s,sbc->bc", self.step_weights.softmax(0), stacked)
        if self.decoder == "confident":
            best = stacked.softmax(-1).amax(-1).argmax(0)  # per sample, the step of highest confidence
            return stacked[best, torch.arange(stacked.shape[1], device=best.device)]
        return stacked.mean(0)

    def _features(self, norm: nn.Module, x: Tensor, step: int) -> Tensor:
        return torch.flatten(self.pool(self.act(norm(x, step))), 1)


def prenet_layers(plan: Plan) -> list[nn.Module]:
    """The pre-net's layers, in order."""
    spec, shape = plan.spec, plan.input_shape
    layers = []
    for op, params, out in plan.prenet:
        ctx = OpContext(op.name, shape, out, params, activation_name=spec.defaults.activation)
        layers.append(op.load()(ctx))
        shape = out
    return layers


def make_head(plan: Plan) -> Head:
    spec = plan.spec
    return Head({area: plan.shapes[area] for area in plan.readout_areas}, spec.readout.head, plan.head_norm,
                plan.head_norm_steps, spec.defaults.activation, spec.readout.decoder)


def cell_module(plan: Plan, cell: CellSet) -> nn.Module:
    """The module of an area's cell, with norms for the steps it runs at."""
    area = plan.area_cells[cell.area]
    ctx = CellContext(cell.name, plan.shapes[cell.area], area.params, cell.steps or (0,), area.activation)
    return area.definition.load()(ctx)


def weight_set_module(plan: Plan, edge_name: str, steps: tuple[int, ...]) -> nn.Module:
    """The op module of one weight set of an edge, with norms for `steps`."""
    edge = plan.edges[edge_name]
    op = edge.definition
    ctx = OpContext(op.name, plan.shapes[edge.source], plan.shapes[edge.target], edge.params,
                    norm_policy=edge.norm.policy, norm_steps=steps, activation_name=edge.activation,
                    norm_kind=edge.norm)
    return op.load()(ctx)


def tie(module: nn.Module, target: nn.Module) -> None:
    """Make `module` use `target`'s weights: its weight-bearing parts become references to target's.

    The shared parts stay registered only under the target, so every parameter
    has one name (the owner's) and counts once; norms are never shared.
    """
    names = tieable_parts(module)
    for name in names:
        mine, theirs = getattr(module, name), getattr(target, name, None)
        shapes = [p.shape for p in mine.parameters()]
        if theirs is None or shapes != [p.shape for p in theirs.parameters()]:
            raise ValueError(f"cannot tie {name!r}: the target has no part of that name and shape")
        del module._modules[name]
        object.__setattr__(module, name, theirs)
