"""Where a NaN or an infinity first appears: which step, which area, which edge.

Training calls these when the loss or the gradients stop being finite, so the
message points at the part of the network to look at instead of "loss is nan".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .analysis import INPUT
from .model import CortexNet, kept_statistics


@dataclass(frozen=True)
class Place:
    """A place in the network: a step, an area and an edge (or the pre-net or head)."""

    what: str  # "pre-net", "edge", "head"
    step: int | None = None
    area: str | None = None
    edge: str | None = None
    parameter: str | None = None

    def __str__(self) -> str:
        of = f" (the gradient of {self.parameter})" if self.parameter else ""
        if self.what != "edge":
            return self.what + of
        where = f"step {self.step}, " if self.step is not None else ""
        return where + f"area {self.area}, edge {self.edge}" + of


def _finite(t: Tensor) -> bool:
    return bool(torch.isfinite(t).all())


class _Found(Exception):
    def __init__(self, place: Place):
        self.place = place


def _walk(model: CortexNet, plan, x: Tensor, around) -> Tensor:
    """Run `plan` on `x` call by call, each call as `around(place, run, source)`; returns the head's input.
    (Callers keep the running statistics: a diagnosis must change nothing.)"""
    values = {(INPUT, 0): model.prenet(x)}
    if not _finite(values[(INPUT, 0)]):
        raise _Found(Place("pre-net"))
    latest: dict[str, Tensor] = {}
    for step, updates in enumerate(plan.schedule):
        made = {}
        for update in updates:
            total = None
            for call in update.calls:
                module = model.group(call.group)
                out = around(Place("edge", step, update.area, call.edge),
                             lambda s, m=module, n=call.norm_step: m(s, n), values[(call.source, call.reads)])
                total = out if total is None else total + out
            made[update.area] = total
        for area, value in made.items():
            values[(area, step)] = latest[area] = value
    return latest[plan.readout_area]


@torch.no_grad()
def first_nonfinite_value(model: CortexNet, x: Tensor) -> Place | None:
    """Run the whole plan (nothing pruned) on `x`, checking every edge's output in step order."""

    def checked(place: Place, run, source: Tensor) -> Tensor:
        out = run(source)
        if not _finite(out):
            raise _Found(place)
        return out

    try:
        with kept_statistics(model.modules()):
            plan = model.plan_for(states=True)
            final = _walk(model, plan, x, checked)
            return None if _finite(model.head(final, plan.head_norm_step(plan.readout_steps[-1]))) else Place("head")
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
    probes: list[tuple[Place, list, list]] = []  # (place, gradient reaching the output, passed to input)

    def probed(place: Place, run, source: Tensor) -> Tensor:
        passed, reaching = [], []
        probes.append((place, reaching, passed))
        return _Probe.apply(run(_Probe.apply(source, passed)), reaching)

    head_in, reaching_head = [], []
    try:
        with kept_statistics(model.modules()):  # after the backward pass, which needs them as they were
            plan = model.plan
            final = _walk(model, plan, x, probed)
            head = model.head(_Probe.apply(final, head_in), plan.head_norm_step(plan.readout_steps[-1]))
            logits = _Probe.apply(head, reaching_head)
            model.zero_grad(set_to_none=True)
            loss_fn(logits).backward()
        bad = [name for name, p in model.named_parameters() if p.grad is not None and not _finite(p.grad)]
    except _Found as found:
        return found.place
    finally:
        model.zero_grad(set_to_none=True)
    if reaching_head and not all(reaching_head):
        return Place("the loss")
    if head_in and not all(head_in):
        return Place("head")
    for place, reaching, passed in reversed(probes):
        if all(reaching) and not all(passed):
            return place
    return _place_of_parameter(model, bad[0]) if bad else None


def _place_of_parameter(model: CortexNet, name: str) -> Place:
    """Where a parameter (by its state-dict name) belongs: an edge (its target area), the pre-net or the head."""
    part, _, rest = name.partition(".")
    if part != "edges":
        return Place("pre-net" if part == "prenet" else "head", parameter=name)
    edge = rest.split(".")[0]
    return Place("edge", area=model.analysis.edge(edge).target, edge=edge, parameter=name)
