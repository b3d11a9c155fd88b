"""Cells: what an area makes of its drive (docs/semantics.md, "Cells"; names and parameters in `cell_registry.py`).

A cell is built as `Cell(ctx)` from a `CellContext` and called as
`cell(drive, h, memory, step) -> (value, memory)`: `drive` is the area's drive
`D` (zeros where nothing fires), `h` its previous value (None at its first
update: zeros), `memory` what the cell returned besides its value last time
(None at first; an LSTM's cell state), `step` picks per-step norms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ACTIVATIONS
from .norms import make_norm
from .registry import Shape


@dataclass(frozen=True)
class CellContext:
    """Everything a cell is built from."""

    cell: str  # the registered name
    shape: Shape  # the area's (channels, height, width)
    params: Any  # the cell's validated Params
    norm_steps: tuple[int, ...] = (0,)  # the steps at which it runs, up to the horizon
    activation_name: str = "relu"  # the cell's `act`, else the spec's activation

    @property
    def channels(self) -> int:
        return self.shape[0]

    def norm(self) -> nn.Module:
        """The cell's norm over the area, following its `norm`: call it as `norm(x, step)`."""
        norm = getattr(self.params, "norm", None)
        if norm is None:
            return make_norm("none", self.channels, self.norm_steps)
        return make_norm(norm.policy, self.channels, self.norm_steps, norm, self.shape[1:])

    def activation(self) -> nn.Module:
        return ACTIVATIONS[self.activation_name](False)

    def lrn(self) -> nn.Module:
        """The local response normalisation after the activation, where the cell has one."""
        p = getattr(self.params, "lrn", None)
        return nn.LocalResponseNorm(p.size, p.alpha, p.beta, p.k) if p is not None else nn.Identity()


class ActCell(nn.Module):
    """`act(norm_t(D))`, then the local response normalisation where there is one."""

    def __init__(self, ctx: CellContext):
        super().__init__()
        self.norm = ctx.norm()
        self.act = ctx.activation()
        self.lrn = ctx.lrn()

    def forward(self, drive: Tensor, h: Tensor | None, memory: Any, step: int) -> tuple[Tensor, None]:
        return self.lrn(self.act(self.norm(drive, step))), None


class ConvCell(nn.Module):
    """`act(norm_t(conv(D)))`, the conv keeping the area's shape (then the local response normalisation)."""

    def __init__(self, ctx: CellContext):
        super().__init__()
        k, c = ctx.params.kernel, ctx.channels
        self.conv = nn.Conv2d(c, c, k, padding=k // 2, bias=ctx.params.bias)
        self.norm = ctx.norm()
        self.act = ctx.activation()
        self.lrn = ctx.lrn()

    def forward(self, drive: Tensor, h: Tensor | None, memory: Any, step: int) -> tuple[Tensor, None]:
        return self.lrn(self.act(self.norm(self.conv(drive), step))), None


class LeakyCell(nn.Module):
    """`(1 - a) h + a act(D)` with `a = dt / tau`; a learned tau is `dt + softplus(raw)`, so it stays above dt."""

    def __init__(self, ctx: CellContext):
        super().__init__()
        p = ctx.params
        self.dt = p.dt
        self.act = ctx.activation()
        shape = (1, ctx.channels, 1, 1) if p.per_channel else ()
        if p.learn_tau:
            y = p.tau - p.dt
            raw = y + math.log(-math.expm1(-y))  # softplus(raw) = y (log(expm1(y)) overflows past y = 709)
            self.raw_tau = nn.Parameter(torch.full(shape, raw))
        else:
            self.register_buffer("tau", torch.full(shape, float(p.tau)), persistent=False)

    def time_constant(self) -> Tensor:
        return self.dt + F.softplus(self.raw_tau) if hasattr(self, "raw_tau") else self.tau

    def forward(self, drive: Tensor, h: Tensor | None, memory: Any, step: int) -> tuple[Tensor, None]:
        a = self.dt / self.time_constant()
        target = a * self.act(drive)
        return (target if h is None else (1 - a) * h + target), None


class GRUCell(nn.Module):
    """ConvGRU, with torch.nn.GRUCell's convention: z = s(conv_z[D, h]), r = s(conv_r[D, h]),
    n = tanh(conv_n[D, r h]), h' = (1 - z) n + z h."""

    def __init__(self, ctx: CellContext):
        super().__init__()
        k, c, bias = ctx.params.kernel, ctx.channels, ctx.params.bias
        self.update = nn.Conv2d(2 * c, c, k, padding=k // 2, bias=bias)
        self.reset = nn.Conv2d(2 * c, c, k, padding=k // 2, bias=bias)
        self.candidate = nn.Conv2d(2 * c, c, k, padding=k // 2, bias=bias)

    def forward(self, drive: Tensor, h: Tensor | None, memory: Any, step: int) -> tuple[Tensor, None]:
        h = torch.zeros_like(drive) if h is None else h
        both = torch.cat([drive, h], 1)
        z = torch.sigmoid(self.update(both))
        r = torch.sigmoid(self.reset(both))
        n = torch.tanh(self.candidate(torch.cat([drive, r * h], 1)))
        return (1 - z) * n + z * h, None


class LSTMCell(nn.Module):
    """ConvLSTM: i, f, g, o = conv[D, h] (torch.nn.LSTMCell's order); c' = s(f) c + s(i) tanh(g);
    h' = s(o) tanh(c'). The memory is c."""

    def __init__(self, ctx: CellContext):
        super().__init__()
        k, c = ctx.params.kernel, ctx.channels
        self.gates = nn.Conv2d(2 * c, 4 * c, k, padding=k // 2, bias=ctx.params.bias)

    def forward(self, drive: Tensor, h: Tensor | None, memory: Tensor | None, step: int) -> tuple[Tensor, Tensor]:
        h = torch.zeros_like(drive) if h is None else h
        i, f, g, o = self.gates(torch.cat([drive, h], 1)).chunk(4, 1)
        c = torch.sigmoid(i) * torch.tanh(g)
        if memory is not None:
            c = c + torch.sigmoid(f) * memory
        return torch.sigmoid(o) * torch.tanh(c), c


class RGCCell(nn.Module):
    """The reciprocal gated cell (Nayebi et al. 2018; convrnns' `rgc_shallow` form): a memory `c` and the
    value `h` gate each other. With `s` the sigmoid and E the ELU:
    c' = E((1 - s(conv_cc c)) c + (1 - s(conv_hc h)) conv_xc D),
    h' = E((1 - s(conv_hh h)) h + (1 - s(conv_ch c)) D)."""

    def __init__(self, ctx: CellContext):
        super().__init__()
        k, c, bias = ctx.params.kernel, ctx.channels, ctx.params.bias
        for name in ("input_to_memory", "memory_tau", "memory_gate", "value_tau", "value_gate"):
            self.add_module(name, nn.Conv2d(c, c, k, padding=k // 2, bias=bias))

    def forward(self, drive: Tensor, h: Tensor | None, memory: Tensor | None, step: int) -> tuple[Tensor, Tensor]:
        h = torch.zeros_like(drive) if h is None else h
        c = torch.zeros_like(drive) if memory is None else memory
        new_c = F.elu((1 - torch.sigmoid(self.memory_tau(c))) * c
                      + (1 - torch.sigmoid(self.memory_gate(h))) * self.input_to_memory(drive))
        new_h = F.elu((1 - torch.sigmoid(self.value_tau(h))) * h + (1 - torch.sigmoid(self.value_gate(c))) * drive)
        return new_h, new_c
