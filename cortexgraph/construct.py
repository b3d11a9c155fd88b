"""Plan -> a model with its weights: `construct(plan)` makes the module once, refusing first a model
too big for this machine's memory, and initialises its weights as torchvision does."""

from __future__ import annotations

import torch
from torch import nn

from .errors import Problem, SpecError
from .model import CortexNet
from .ops.layers import init_weights
from .plan import Plan
from .sizes import format_bytes, machine_memory


def construct(plan: Plan) -> CortexNet:
    """The module for a Plan, its weights initialised once.

    nn.Conv2d and friends initialise their weights as they are made, and we then
    initialise them again as torchvision does; for big specs that doubles the
    build time. So a big model is made on the meta device (no memory, no
    arithmetic) and materialised once. Small ones are made the ordinary way:
    on the meta device each tensor operation goes through Python, which for many
    small tensors costs more than initialising them twice. A user's op whose
    parameters or buffers have no `reset_parameters` cannot be re-initialised
    either: such a model is built the ordinary way too.
    """
    if torch.get_default_device().type == "meta":
        return CortexNet(plan)  # shapes only: nothing to initialise
    _check_memory(plan)
    if plan.size.parameters < 2_000_000:
        return CortexNet(plan)
    with torch.device("meta"):
        model = CortexNet(plan)
    if not all(_resettable(m) for m in model.modules()):
        return CortexNet(plan)
    model.to_empty(device="cpu")
    for m in model.modules():
        if hasattr(m, "reset_parameters") and not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.reset_parameters()  # linear layers, norms (running statistics too)
    init_weights(model, plan.spec.defaults.zero_init_residual)
    return model


def _check_memory(plan: Plan) -> None:
    """Refuse, before allocating, a model whose weights and statistics alone exceed this machine's memory."""
    memory = machine_memory()
    need = plan.size.bytes
    if memory is not None and need > memory:  # (None: the system does not say; let the allocator say)
        spec = plan.spec
        raise SpecError([spec.source.place(Problem(
            (), f"{spec.name} holds {plan.size.parameters:,} parameters: {format_bytes(need)} with its norms' "
                f"statistics, more than this machine's {format_bytes(memory)} of memory",
            "share weights (share: time) or narrow the areas; `with torch.device('meta'): build(...)` "
            "shows its shapes without memory"))])


def _resettable(module: nn.Module) -> bool:
    owns = bool(module._parameters) or any(b is not None for b in module._buffers.values())
    return not owns or hasattr(module, "reset_parameters")
