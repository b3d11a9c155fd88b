"""Normalisation that knows about time: one norm per step (TSBN), one for all steps, or none.

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


class Norm(nn.BatchNorm2d):
    """One BatchNorm for every step (`norm: shared`, or weights that run at one step)."""

    def forward(self, x: Tensor, step: int = 0) -> Tensor:  # noqa: ARG002 - one norm serves all steps
        return super().forward(x)


class StepNorm(nn.Module):
    """Time-specific batch normalisation: a BatchNorm per step, named `t<step>`."""

    def __init__(self, channels: int, steps: tuple[int, ...]):
        super().__init__()
        for step in steps:
            self.add_module(f"t{step}", nn.BatchNorm2d(channels))
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


NORMS = (Norm, StepNorm, NoNorm)


def make_norm(policy: str, channels: int, steps: tuple[int, ...]) -> nn.Module:
    """The norm for weights that run at `steps` under `policy` (per_step / shared / none)."""
    if policy == "none":
        return NoNorm()
    if policy == "per_step" and len(steps) > 1:
        return StepNorm(channels, steps)
    return Norm(channels)


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
