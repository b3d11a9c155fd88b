"""Residual ops. Each contributes the whole `h + K(h)` (or its projection when the shape changes).

`BasicBlock` and `Bottleneck` compute exactly what torchvision's do, so a spec
built from them loads torchvision's weights; `CornetBlock` computes CORnet-S's
recurrent block. Norms are made by `ctx.norm` and called with the step.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import OpContext, conv1x1, conv3x3
from .norms import NORM_LAYERS


def _zero_scale(norm: nn.Module) -> None:
    """Make a residual branch that ends in `norm` start at zero (the scale of every step's norm), so
    that the block starts as its shortcut. A branch without a norm (`norm: none`) keeps its init."""
    for m in norm.modules():
        if isinstance(m, NORM_LAYERS) and getattr(m, "weight", None) is not None:
            nn.init.zeros_(m.weight)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: act(bn2(conv2(act(bn1(conv1(h))))) + shortcut(h))."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        cin, cout, stride = ctx.in_channels, ctx.out_channels, ctx.stride
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = ctx.norm(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = ctx.norm(cout)
        self.act = ctx.activation()
        self.shortcut = conv1x1(cin, cout, stride) if ctx.reshapes else None
        self.shortcut_norm = ctx.norm(cout) if ctx.reshapes else None

    def forward(self, x: Tensor, step: int) -> Tensor:
        out = self.act(self.bn1(self.conv1(x), step))
        out = self.bn2(self.conv2(out), step)
        identity = x if self.shortcut is None else self.shortcut_norm(self.shortcut(x), step)
        return self.act(out + identity)

    def zero_init_residual(self) -> None:
        _zero_scale(self.bn2)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5, stride in the 3x3): 1x1 down to `width`, 3x3, 1x1 up, plus shortcut."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        cin, cout, stride = ctx.in_channels, ctx.out_channels, ctx.stride
        groups = ctx.params.groups
        width = ctx.params.width or cout // 4
        self.conv1 = conv1x1(cin, width)
        self.bn1 = ctx.norm(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = ctx.norm(width)
        self.conv3 = conv1x1(width, cout)
        self.bn3 = ctx.norm(cout)
        self.act = ctx.activation()
        self.shortcut = conv1x1(cin, cout, stride) if ctx.reshapes else None
        self.shortcut_norm = ctx.norm(cout) if ctx.reshapes else None

    def forward(self, x: Tensor, step: int) -> Tensor:
        out = self.act(self.bn1(self.conv1(x), step))
        out = self.act(self.bn2(self.conv2(out), step))
        out = self.bn3(self.conv3(out), step)
        identity = x if self.shortcut is None else self.shortcut_norm(self.shortcut(x), step)
        return self.act(out + identity)

    def zero_init_residual(self) -> None:
        _zero_scale(self.bn3)


class PreActBlock(nn.Module):
    """Pre-activation residual unit (He et al. 2016): h + conv2(act(bn2(conv1(act(bn1(h)))))).

    The `residual` op: it contributes exactly h + K(h), the paper's recurrence.
    With a shape change the shortcut projects the pre-activated input.
    """

    def __init__(self, ctx: OpContext):
        super().__init__()
        cin, cout, stride = ctx.in_channels, ctx.out_channels, ctx.stride
        self.bn1 = ctx.norm(cin)
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn2 = ctx.norm(cout)
        self.conv2 = conv3x3(cout, cout)
        self.act_input = ctx.activation(inplace=False)  # with norm: none, bn1(x) is x itself
        self.act = ctx.activation()
        self.shortcut = conv1x1(cin, cout, stride) if ctx.reshapes else None

    def forward(self, x: Tensor, step: int) -> Tensor:
        pre = self.act_input(self.bn1(x, step))
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.act(self.bn2(out, step)))
        return out + identity

    def zero_init_residual(self) -> None:
        # The branch ends in a conv (as in Fixup, Zhang et al. 2019); a zero norm before it would leave
        # the ReLU between them, and so the branch, without a gradient.
        nn.init.zeros_(self.conv2.weight)


class CornetBlock(nn.Module):
    """CORnet-S's recurrent bottleneck (Kubilius et al. 2019).

    The recurrence (same shape): act(norm3(conv3(act(norm2(conv2(act(norm1(conv1(h)))))))) + h).
    An entry edge (the shape changes) first maps the input with `conv_input`
    (1x1), runs conv2 with the stride and adds a strided, normalised `skip`.
    The entry ties conv1-3 to the area's recurrence, as CORnet-S shares them;
    conv2 is applied with this edge's own stride, so one kernel serves both.
    """

    tied = ("conv1", "conv2", "conv3")  # what `tie` shares; conv_input and skip stay the entry's own

    def __init__(self, ctx: OpContext):
        super().__init__()
        cout, scale = ctx.out_channels, ctx.params.scale
        self.entry = ctx.reshapes
        self.stride = ctx.stride
        if self.entry:
            self.conv_input = conv1x1(ctx.in_channels, cout)
            self.skip = conv1x1(cout, cout, self.stride)
            self.norm_skip = ctx.norm(cout)
        self.conv1 = conv1x1(cout, cout * scale)
        self.norm1 = ctx.norm(cout * scale)
        self.conv2 = conv3x3(cout * scale, cout * scale)  # applied with self.stride in forward
        self.norm2 = ctx.norm(cout * scale)
        self.conv3 = conv1x1(cout * scale, cout)
        self.norm3 = ctx.norm(cout)
        self.act = ctx.activation()

    def forward(self, x: Tensor, step: int) -> Tensor:
        if self.entry:
            x = self.conv_input(x)
            skip = self.norm_skip(self.skip(x), step)
        else:
            skip = x
        out = self.act(self.norm1(self.conv1(x), step))
        out = F.conv2d(out, self.conv2.weight, None, self.stride, 1)
        out = self.act(self.norm2(out, step))
        out = self.norm3(self.conv3(out), step)
        return self.act(out + skip)

    def zero_init_residual(self) -> None:
        _zero_scale(self.norm3)
