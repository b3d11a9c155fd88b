"""Simple ops: identity, conv-norm-activation, up- and down-sampling, and the pre-net's layers.

A transition op is built as `Op(ctx)` from an `OpContext` and called as
`op(x, step)`, `step` choosing the norm (see `norms.py`). Pre-net layers run
once, before step 0, and are called as `layer(x)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from .norm_spec import NormSpec
from .norms import NORMS, make_norm
from .op_params import Shape, _pooled, resampling

ACTIVATIONS = {  # name -> (inplace -> module)
    "relu": lambda inplace: nn.ReLU(inplace=inplace),
    "gelu": lambda inplace: nn.GELU(),
    "silu": lambda inplace: nn.SiLU(inplace=inplace),
    "tanh": lambda inplace: nn.Tanh(),
    "elu": lambda inplace: nn.ELU(inplace=inplace),
    "none": lambda inplace: nn.Identity(),
}


@dataclass(frozen=True)
class OpContext:
    """Everything an op is built from."""

    op: str  # the op's registered name
    in_shape: Shape
    out_shape: Shape
    params: Any  # the op's validated Params
    norm_policy: str = "per_step"
    norm_steps: tuple[int, ...] = (1,)  # the steps at which these weights run
    activation_name: str = "relu"
    norm_kind: NormSpec = NormSpec()  # batch, group, layer or instance (its groups and eps)

    @property
    def in_channels(self) -> int:
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        return self.out_shape[0]

    @property
    def scale(self) -> tuple[str, int]:
        """('same', 1), ('down', factor) or ('up', factor)."""
        return resampling(self.in_shape, self.out_shape)

    @property
    def stride(self) -> int:
        how, factor = self.scale
        return factor if how == "down" else 1

    @property
    def reshapes(self) -> bool:
        """Whether the op changes channels or size (and so needs a projection shortcut)."""
        return self.in_shape != self.out_shape

    def norm(self, channels: int, size: tuple[int, int] | None = None) -> nn.Module:
        """A norm for `channels` following the edge's policy and kind: call it as `norm(x, step)`. A layer
        norm also normalises over height and width: `size`, the output's by default."""
        return make_norm(self.norm_policy, channels, self.norm_steps, self.norm_kind, size or self.out_shape[1:])

    def activation(self, inplace: bool = True) -> nn.Module:
        """The spec's nonlinearity. In place by default (as torchvision's ReLUs), which is safe on a
        tensor the op made itself; an op applying it to its input must ask for `inplace=False`:
        an area's value is read by other edges too, and ops never change their input."""
        return ACTIVATIONS[self.activation_name](inplace)


def tieable_parts(module: nn.Module) -> list[str]:
    """The parts of an op's module that `tie` borrows from another edge's: those its class lists as
    `tied`, else every part that holds weights and is not a norm (norms are never shared)."""
    names = getattr(type(module), "tied", None)
    if names is not None:
        return list(names)
    return [n for n, child in module.named_children()
            if not isinstance(child, NORMS) and any(True for _ in child.parameters())]


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class Identity(nn.Module):
    def __init__(self, ctx: OpContext):
        super().__init__()

    def forward(self, x: Tensor, step: int) -> Tensor:
        return x


class ConvNormAct(nn.Module):
    """conv (strided by the size ratio), norm, activation: the `conv` and `down` ops."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        k, pool, first = ctx.params.kernel, ctx.params.pool, ctx.params.pool_input
        stride = ctx.stride // (pool.stride if pool else 1) // (first.stride if first else 1)
        self.pool_input = _pool(first.kind, first.kernel, first.stride, first.padding) if first else nn.Identity()
        self.conv = nn.Conv2d(ctx.in_channels, ctx.out_channels, k, stride=stride, padding=k // 2,
                              bias=ctx.params.bias)
        pooled = [_pooled(s, first.kernel, first.stride, first.padding) if first else s for s in ctx.in_shape[1:]]
        conv_size = tuple(-(-s // stride) for s in pooled)
        self.norm = ctx.norm(ctx.out_channels, conv_size)
        self.act = ctx.activation()
        self.pool = _pool(pool.kind, pool.kernel, pool.stride, pool.padding) if pool is not None else nn.Identity()

    def forward(self, x: Tensor, step: int) -> Tensor:
        return self.pool(self.act(self.norm(self.conv(self.pool_input(x)), step)))


class UpConv(nn.Module):
    """Upsampling into a larger area: resize then conv, or one transposed conv; then norm, activation."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        _, factor = ctx.scale
        p = ctx.params
        if p.mode == "transpose":
            # Output (H - 1) s - 2 pad + k + extra = H s: exactly the ratio, whatever the kernel.
            k = p.transpose_kernel(factor)
            pad = (k - factor + 1) // 2
            self.resize = nn.Identity()
            self.conv = nn.ConvTranspose2d(ctx.in_channels, ctx.out_channels, k, stride=factor, padding=pad,
                                           output_padding=factor - k + 2 * pad, bias=False)
        else:
            align = False if p.mode == "bilinear" else None
            self.resize = nn.Upsample(scale_factor=factor, mode=p.mode, align_corners=align)
            self.conv = nn.Conv2d(ctx.in_channels, ctx.out_channels, p.kernel, padding=p.kernel // 2, bias=False)
        self.norm = ctx.norm(ctx.out_channels)
        self.act = ctx.activation()

    def forward(self, x: Tensor, step: int) -> Tensor:
        return self.act(self.norm(self.conv(self.resize(x)), step))


def _pool(kind: str, kernel: int, stride: int, padding: int) -> nn.Module:
    # Average pooling counts padded zeros (torch's default, count_include_pad=True), as CORnet's code does.
    return (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(kernel, stride, padding)


class Pool(nn.Module):
    """`pool`, `maxpool` and `avgpool`: stride the size ratio, kernel the stride unless given."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        _, factor = ctx.scale
        kind = {"maxpool": "max", "avgpool": "avg"}.get(ctx.op) or ctx.params.kind
        self.pool = _pool(kind, ctx.params.kernel or factor, factor, ctx.params.padding)

    def forward(self, x: Tensor, step: int) -> Tensor:
        return self.pool(x)


class StemConv(nn.Module):
    """A pre-net conv with its own (single) BatchNorm and activation."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        p = ctx.params
        padding = p.kernel // 2 if p.padding is None else p.padding
        self.conv = nn.Conv2d(ctx.in_channels, p.out, p.kernel, stride=p.stride, padding=padding, bias=p.bias)
        self.norm = make_norm("shared", p.out, (0,), p.norm_kind, ctx.out_shape[1:])  # it runs once
        self.act = (ACTIVATIONS[p.act](True) if isinstance(p.act, str) else
                    ctx.activation() if p.act else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class StemPool(nn.Module):
    def __init__(self, ctx: OpContext):
        super().__init__()
        p = ctx.params
        kind = nn.MaxPool2d if ctx.op == "maxpool" else nn.AvgPool2d
        self.pool = kind(p.kernel, stride=p.stride or p.kernel, padding=p.padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x)


def init_weights(model: nn.Module, zero_residual: bool) -> None:
    """torchvision's ResNet initialisation: He-normal convs, unit-scale norms; with `zero_residual`,
    residual ops (those with a `zero_init_residual` method) then start as the identity, as torchvision's
    `zero_init_residual=True` makes them."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_residual"):
                m.zero_init_residual()
