"""Normalisation that knows about time: one norm per step (TSBN), one for all steps, or none; batch,
group, layer or instance norms (`norm_spec.py` says how a spec writes them).

Every norm is called as `norm(x, step)`. The Plan has already decided which
step's norm a call uses (including past the horizon), so these modules only
look it up. Ops make their norms through `OpContext.norm`, never directly,
which is also how ties know to leave norms alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .norm_spec import NormSpec


class Norm(nn.BatchNorm2d):
    """One BatchNorm for every step (`norm: shared`, or weights that run at one step)."""

    def forward(self, x: Tensor, step: int = 0) -> Tensor:  # noqa: ARG002 - one norm serves all steps
        return super().forward(x)


class GroupNorm(nn.GroupNorm):
    """One group norm for every step."""

    def forward(self, x: Tensor, step: int = 0) -> Tensor:  # noqa: ARG002
        return super().forward(x)


class LayerNorm(nn.LayerNorm):
    """One layer norm (over channels, height and width) for every step."""

    def forward(self, x: Tensor, step: int = 0) -> Tensor:  # noqa: ARG002
        return super().forward(x)


class InstanceNorm(nn.InstanceNorm2d):
    """One instance norm (with an affine) for every step."""

    def forward(self, x: Tensor, step: int = 0) -> Tensor:  # noqa: ARG002
        return super().forward(x)


def _one_norm(kind: NormSpec, channels: int, size: tuple[int, int] | None, shared: bool) -> nn.Module:
    """A norm of `kind`: the step-free classes above where `shared`, torch's own inside a StepNorm."""
    if kind.kind == "batch":
        return (Norm if shared else nn.BatchNorm2d)(channels, eps=kind.eps, momentum=kind.momentum)
    if kind.kind == "group":
        return (GroupNorm if shared else nn.GroupNorm)(kind.groups, channels, eps=kind.eps)
    if kind.kind == "instance":
        return (InstanceNorm if shared else nn.InstanceNorm2d)(channels, eps=kind.eps, affine=True)
    if size is None:
        raise ValueError("a layer norm needs the height and width it normalises over")
    return (LayerNorm if shared else nn.LayerNorm)([channels, *size], eps=kind.eps)


class StepNorm(nn.Module):
    """Time-specific normalisation: a norm per step, named `t<step>` (batch norms by default: TSBN)."""

    def __init__(self, channels: int, steps: tuple[int, ...], kind: NormSpec = NormSpec(),
                 size: tuple[int, int] | None = None):
        super().__init__()
        for step in steps:
            self.add_module(f"t{step}", _one_norm(kind, channels, size, shared=False))
        self.steps = tuple(steps)
        self._names = {step: f"t{step}" for step in steps}

    def forward(self, x: Tensor, step: int) -> Tensor:
        # Looked up by name at each call, so a child swapped later (SyncBatchNorm) is the one used.
        return self._modules[self._names[step]](x)

    def extra_repr(self) -> str:
        return f"steps={list(self.steps)}"


class NoNorm(nn.Module):
    def forward(self, x: Tensor, step: int = 0) -> Tensor:  # noqa: ARG002
        return x


NORMS = (Norm, StepNorm, NoNorm, GroupNorm, LayerNorm, InstanceNorm)
NORM_LAYERS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)  # what normalises, inside NORMS


def make_norm(policy: str, channels: int, steps: tuple[int, ...], kind: NormSpec | None = None,
              size: tuple[int, int] | None = None) -> nn.Module:
    """The norm for weights that run at `steps` under `policy` (per_step / shared / none): of `kind` (a batch
    norm by default), over `channels` (and, for a layer norm, the height and width `size`)."""
    kind = kind or NormSpec()
    if policy == "none" or kind.kind == "none":
        return NoNorm()
    if policy == "per_step" and len(steps) > 1:
        return StepNorm(channels, steps, kind, size)
    return _one_norm(kind, channels, size, shared=True)


@contextmanager
def kept_statistics(modules: Any) -> Iterator[None]:
    """Run modules (BatchNorms among them) in training mode without their running statistics moving:
    they are put back as they were. Activation checkpointing recomputes a step this way (its
    BatchNorms must run exactly as before, so autograd finds the same saved tensors, but must not
    count the batch twice), and so do the diagnoses of non-finite values."""
    norms = [m for m in modules if isinstance(m, nn.BatchNorm2d)]
    saved = [[b.clone() for b in n.buffers()] for n in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for n, buffers in zip(norms, saved):
                for b, before in zip(n.buffers(), buffers):
                    b.copy_(before)
