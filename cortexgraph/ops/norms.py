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


BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)  # the norms with running statistics


def batch_norms_at(module: nn.Module, step: int) -> list[nn.Module]:
    """The batch norms a call of `module` at `step` runs: inside a StepNorm, only that step's."""
    if isinstance(module, BATCH_NORMS):
        return [module]
    if isinstance(module, StepNorm) and step in module.steps:
        return batch_norms_at(module._modules[module._names[step]], step)
    return [n for child in module.children() for n in batch_norms_at(child, step)]


_SCRATCH: dict[tuple, Tensor] = {}  # by (shape, dtype, device): statistics written but never read


def _scratch(buffer: Tensor) -> Tensor:
    key = (buffer.shape, buffer.dtype, buffer.device)
    if key not in _SCRATCH:
        _SCRATCH[key] = torch.ones_like(buffer)  # ones: a batch count (momentum None divides by it) is never 0
    return _SCRATCH[key]


@contextmanager
def frozen_statistics(norms: Any) -> Iterator[None]:
    """Run batch norms in training mode without their running statistics or batch counts moving, at no cost:
    while it lasts each norm in training mode updates scratch tensors in their place, which nobody reads. The
    output is the training step's (it uses the batch's statistics), and autograd saves tensors of the same
    shapes.
    Activation checkpointing recomputes a step this way (its norms must compute exactly what they did but
    not count the batch twice), and so do the diagnoses of non-finite values. Copying each statistic aside
    and back instead cost two operations per buffer, each a kernel launch on a GPU: one checkpointed
    training step of liao2016/frnn4-cifar took 6,630 operations that way, 1,619 this way (a plain step:
    1,060; benchmarks/kernels.py counts them)."""
    # (A norm in eval mode reads its statistics and moves none: it keeps its own.)
    swapped = [(n, name, buffer) for n in norms if n.training for name, buffer in n._buffers.items()
               if buffer is not None]
    for n, name, buffer in swapped:
        n._buffers[name] = _scratch(buffer)
    try:
        yield
    finally:
        for n, name, buffer in swapped:
            n._buffers[name] = buffer
