"""Where a NaN or an infinity first appears: which step, which area, which edge.

Training calls these when the loss or the gradients stop being finite, so the
message points at the part of the network to look at instead of "loss is nan".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .analysis import INPUT
from .model import CortexNet


@dataclass(frozen=True)
class Place:
    """A place in the network: a step, an area and an edge (or the pre-net or head)."""

    what: str  # "pre-net", "edge", "head"
    step: int | None = None
    area: str | None = None
    edge: str | None = None
    parameter: str | None = None

    def __str__(self) -> str:
        if self.what != "edge":
            return self.what + (f" ({self.parameter})" if self.parameter else "")
        where = f"step {self.step}, " if self.step is not None else ""
        return where + f"area {self.area}, edge {self.edge}" + (f" ({self.parameter})" if self.parameter else "")


def _finite(t: Tensor) -> bool:
    return bool(torch.isfinite(t).all())


@torch.no_grad()
def first_nonfinite_value(model: CortexNet, x: Tensor) -> Place | None:
    """Run the whole plan (nothing pruned) on `x`, checking every edge's output in step order.

    Runs in the model's current mode; BatchNorm running statistics are put back afterwards."""
    saved = {name: b.clone() for name, b in model.named_buffers()}
    try:
        plan = model.plan_for(states=True)
        values = {(INPUT, 0): model.prenet(x)}
        if not _finite(values[(INPUT, 0)]):
            return Place("pre-net")
        latest: dict[str, Tensor] = {}
        for step, updates in enumerate(plan.schedule):
            made = {}
            for update in updates:
                total = None
                for call in update.calls:
                    source = values[(call.source, call.reads)]
                    out = model.group(call.group)(source, call.norm_step)
                    if not _finite(out):
                        return Place("edge", step, update.area, call.edge)
                    total = out if total is None else total + out
                if not _finite(total):  # finite parts whose sum overflows
                    return Place("edge", step, update.area, update.calls[-1].edge)
                made[update.area] = total
            for area, value in made.items():
                values[(area, step)] = latest[area] = value
        final = latest.get(plan.readout_area)
        if final is not None and not _finite(model.head(final)):
            return Place("head")
        return None
    finally:
        state = dict(model.named_buffers())
        for name, value in saved.items():
            state[name].copy_(value)


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
    but which passes a non-finite one on to its input. Running statistics are put back afterwards."""
    saved = {name: b.clone() for name, b in model.named_buffers()}
    try:
        plan = model.plan
        probes: list[tuple[Place, list, list]] = []  # (place, gradient reaching the output, passed to input)
        values = {(INPUT, 0): model.prenet(x)}
        latest: dict[str, Tensor] = {}
        for step, updates in enumerate(plan.schedule):
            made = {}
            for update in updates:
                total = None
                for call in update.calls:
                    passed, reaching = [], []
                    source = _Probe.apply(values[(call.source, call.reads)], passed)
                    out = _Probe.apply(model.group(call.group)(source, call.norm_step), reaching)
                    probes.append((Place("edge", step, update.area, call.edge), reaching, passed))
                    total = out if total is None else total + out
                made[update.area] = total
            for area, value in made.items():
                values[(area, step)] = latest[area] = value
        head_in: list = []
        reaching_head: list = []
        logits = _Probe.apply(model.head(_Probe.apply(latest[plan.readout_area], head_in)), reaching_head)
        model.zero_grad(set_to_none=True)
        loss_fn(logits).backward()
        if reaching_head and not all(reaching_head):
            return Place("the loss")
        if head_in and not all(head_in):
            return Place("head")
        for place, reaching, passed in reversed(probes):
            if all(reaching) and not all(passed):
                return place
        return None
    finally:
        model.zero_grad(set_to_none=True)
        state = dict(model.named_buffers())
        for name, value in saved.items():
            state[name].copy_(value)
