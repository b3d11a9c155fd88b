"""Where a NaN or an infinity first appears: which step, which area, which edge.

Training calls these when the loss or the gradients stop being finite, so the
message points at the part of the network to look at instead of "loss is nan".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .model import CortexNet, Site
from .ops.norms import BATCH_NORMS, frozen_statistics


@dataclass(frozen=True)
class Place:
    """A place in the network: a step, an area and an edge or the area's cell (or the pre-net or head)."""

    what: str  # "pre-net", "edge", "cell", "head"
    step: int | None = None
    area: str | None = None
    edge: str | None = None
    parameter: str | None = None

    def __str__(self) -> str:
        of = f" (the gradient of {self.parameter})" if self.parameter else ""
        if self.what not in ("edge", "cell"):
            return self.what + of
        where = f"step {self.step}, " if self.step is not None else ""
        return where + f"area {self.area}, " + (f"edge {self.edge}" if self.what == "edge" else "its cell") + of


def _finite(t: Tensor) -> bool:
    return bool(torch.isfinite(t).all())


class _Found(Exception):
    def __init__(self, place: Place):
        self.place = place


def _place(site: Site) -> Place:
    if site.what == "call":
        return Place("edge", site.step, site.area, site.call.edge.name)
    if site.what == "cell":
        return Place("cell", site.step, site.area)
    return Place("pre-net" if site.what == "prenet" else "head")


@torch.no_grad()
def first_nonfinite_value(model: CortexNet, x: Tensor) -> Place | None:
    """Run the whole plan (nothing pruned) on `x`, checking the output of the pre-net, of every edge call
    in step order, and of the head. (The running statistics are kept: a diagnosis changes nothing.)"""

    def checked(site: Site, run, value: Tensor) -> Tensor:
        out = run(value)
        if not _finite(out):
            raise _Found(_place(site))
        return out

    try:
        with frozen_statistics(_batch_norms(model)):
            model(x, return_states=True, around=checked)
        return None
    except _Found as found:
        return found.place


class _Probe(torch.autograd.Function):
    """Identity whose backward pass notes whether the gradient passing through it is finite."""

    @staticmethod
    def forward(ctx, x: Tensor, record: list) -> Tensor:
        ctx.record = record
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        ctx.record.append(_finite(grad))
        return grad, None


def first_nonfinite_gradient(model: CortexNet, x: Tensor, loss_fn) -> Place | None:
    """Run `loss_fn(model(x))` forward and backward again, probing every call of the plan: the place
    a non-finite gradient starts is the call (latest in time) whose output receives a finite gradient
    but which passes a non-finite one on to its input. Where every value's gradient is finite, it is a
    parameter's own gradient (one summed over a large batch can overflow): the first such parameter."""
    probes: list[tuple[Site, list, list]] = []  # (site, gradient reaching its output, passed to its input)

    def probed(site: Site, run, value: Tensor | tuple[Tensor, ...]) -> Tensor:
        if site.what == "prenet":  # its input is the images: no gradient to follow
            return run(value)
        passed, reaching = [], []
        probes.append((site, reaching, passed))
        probed_value = (tuple(_Probe.apply(v, passed) for v in value) if isinstance(value, tuple)  # several areas
                        else _Probe.apply(value, passed))
        return _Probe.apply(run(probed_value), reaching)

    try:
        with frozen_statistics(_batch_norms(model)):
            model.zero_grad(set_to_none=True)
            loss_fn(model(x, around=probed)).backward()
        bad = [name for name, p in model.named_parameters() if p.grad is not None and not _finite(p.grad)]
    finally:
        model.zero_grad(set_to_none=True)
    if any(not all(reaching) for site, reaching, _ in probes if site.what == "head"):
        return Place("the loss")
    for site, reaching, passed in reversed(probes):  # the head's readings come last: they are looked at first
        if all(reaching) and not all(passed):
            return _place(site)
    return _place_of_parameter(model, bad[0]) if bad else None


def _place_of_parameter(model: CortexNet, name: str) -> Place:
    """Where a parameter (by its state-dict name) belongs: an edge (its target area), a cell, the pre-net or
    the head."""
    part, _, rest = name.partition(".")
    if part == "cells":
        return Place("cell", area=rest.split(".")[0], parameter=name)
    if part != "edges":
        return Place("pre-net" if part == "prenet" else "head", parameter=name)
    edge = rest.split(".")[0]
    return Place("edge", area=model.plan.edges[edge].target, edge=edge, parameter=name)


def _batch_norms(model: CortexNet) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
