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
from .op_params import Shape


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


class ChannelNorm(nn.Module):
    """A layer norm over the channels at each position (PyTorchTNN's `nn.LayerNorm(channels)` on NHWC)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias).permute(0, 3, 1, 2)


def _channel_norms(cell: nn.Module, on: bool, **channels: int) -> None:
    """`norm_<name>` for each name, a ChannelNorm where `on`, else the identity (no parameters)."""
    for name, c in channels.items():
        cell.add_module(f"norm_{name}", ChannelNorm(c) if on else nn.Identity())


class GRUCell(nn.Module):
    """ConvGRU, with torch.nn.GRUCell's convention: z = s(conv_z[D, h]), r = s(conv_r[D, h] + reset_bias),
    n = tanh(conv_n[D, r h]), h' = (1 - z) n + z h; with `layer_norm`, a norm over the channels on each
    pre-activation (PyTorchTNN's GRUCell, whose reset bias is 1.0)."""

    def __init__(self, ctx: CellContext):
        super().__init__()
        p = ctx.params
        k, c = p.kernel, ctx.channels
        self.update = nn.Conv2d(2 * c, c, k, padding=k // 2, bias=p.bias)
        self.reset = nn.Conv2d(2 * c, c, k, padding=k // 2, bias=p.bias)
        self.candidate = nn.Conv2d(2 * c, c, k, padding=k // 2, bias=p.bias)
        self.reset_bias = p.reset_bias
        _channel_norms(self, p.layer_norm, update=c, reset=c, candidate=c)

    def forward(self, drive: Tensor, h: Tensor | None, memory: Any, step: int) -> tuple[Tensor, None]:
        h = torch.zeros_like(drive) if h is None else h
        both = torch.cat([drive, h], 1)
        z = torch.sigmoid(self.norm_update(self.update(both)))
        r = torch.sigmoid(self.norm_reset(self.reset(both)) + self.reset_bias)
        n = torch.tanh(self.norm_candidate(self.candidate(torch.cat([drive, r * h], 1))))
        return (1 - z) * n + z * h, None


class LSTMCell(nn.Module):
    """ConvLSTM: i, f, g, o = conv[D, h] (torch.nn.LSTMCell's order); c' = s(f + forget_bias) c + s(i) tanh(g);
    h' = s(o) tanh(c'). The memory is c. With `layer_norm`, a norm over the channels on each gate's
    pre-activation and on c' (PyTorchTNN's LSTMCell, whose forget bias is 1.0)."""

    def __init__(self, ctx: CellContext):
        super().__init__()
        p = ctx.params
        k, c = p.kernel, ctx.channels
        self.gates = nn.Conv2d(2 * c, 4 * c, k, padding=k // 2, bias=p.bias)
        self.forget_bias = p.forget_bias
        _channel_norms(self, p.layer_norm, input=c, forget=c, candidate=c, output=c, memory=c)

    def forward(self, drive: Tensor, h: Tensor | None, memory: Tensor | None, step: int) -> tuple[Tensor, Tensor]:
        h = torch.zeros_like(drive) if h is None else h
        i, f, g, o = self.gates(torch.cat([drive, h], 1)).chunk(4, 1)
        i, f, g, o = self.norm_input(i), self.norm_forget(f), self.norm_candidate(g), self.norm_output(o)
        c = torch.sigmoid(i) * torch.tanh(g)
        if memory is not None:
            c = c + torch.sigmoid(f + self.forget_bias) * memory
        c = self.norm_memory(c)
        return torch.sigmoid(o) * torch.tanh(c), c


class RGCCell(nn.Module):
    """The reciprocal gated cell (Nayebi et al. 2018; PyTorchTNN's `ReciprocalGatedCell`): a memory `c` (of
    `memory_channels`) and the value `h` gate each other. With `s` the sigmoid and E the ELU:
    c' = E((1 - s(conv_cc c)) c + (1 - s(conv_hc h)) conv_xc D),
    h' = E((1 - s(conv_hh h)) h + (1 - s(conv_ch c + G)) D),
    G what edges bring into its `out_gate` input (PyTorchTNN's `residual_to_out_gate`: a conv of the area's
    input), 0 where none do. With `layer_norm`, a norm over the channels before each E."""

    inputs = ("out_gate",)

    def __init__(self, ctx: CellContext):
        super().__init__()
        p = ctx.params
        k, c = p.kernel, ctx.channels
        m = p.memory_channels or c
        for name, cin, cout in (("input_to_memory", c, m), ("memory_tau", m, m), ("memory_gate", c, m),
                                ("value_tau", c, c), ("value_gate", m, c)):
            self.add_module(name, nn.Conv2d(cin, cout, k, padding=k // 2, bias=p.bias))
        self.memory_channels = m
        _channel_norms(self, p.layer_norm, memory=m, value=c)

    def forward(self, drive: Tensor, h: Tensor | None, memory: Tensor | None, step: int,
                out_gate: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = torch.zeros_like(drive) if h is None else h
        c = drive.new_zeros((drive.shape[0], self.memory_channels, *drive.shape[2:])) if memory is None else memory
        new_c = F.elu(self.norm_memory((1 - torch.sigmoid(self.memory_tau(c))) * c
                                       + (1 - torch.sigmoid(self.memory_gate(h))) * self.input_to_memory(drive)))
        gate = self.value_gate(c) if out_gate is None else self.value_gate(c) + out_gate
        new_h = F.elu(self.norm_value((1 - torch.sigmoid(self.value_tau(h))) * h + (1 - torch.sigmoid(gate)) * drive))
        return new_h, new_c
