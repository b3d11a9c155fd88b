"""The optimizer of a run: made from its settings, its learning rate set per epoch in closed form, and its
state loaded from a checkpoint onto this device's kernels."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError
from .config import TrainConfig


def make_optimizer(config: TrainConfig, params: Iterable[torch.nn.Parameter],
                   device: torch.device) -> torch.optim.Optimizer:
    kernels = optimizer_kernels(device)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               **kernels)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **kernels)


def set_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, epoch: int) -> None:
    """The learning rate of an epoch, in closed form (what CosineAnnealingLR and StepLR compute).

    Set from the epoch number rather than kept in a stateful scheduler, so a
    resumed run (or one resumed with more epochs) has exactly the rates it
    would have had without stopping."""
    if config.schedule == "cosine":
        factor = 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    elif config.schedule == "step":
        factor = config.gamma ** (epoch // config.step_size)
    else:
        factor = 1.0
    for group in optimizer.param_groups:
        group["lr"] = config.lr * factor


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: Any, device: torch.device, path: Path) -> None:
    """A checkpoint's optimizer state (from `path`) into `optimizer`, or one CheckpointError."""
    # The saved groups name the kernels the checkpoint's device ran; this device's replace them
    # before loading, since torch places each saved step counter by them (fused AdamW on CUDA
    # needs its counters there, a CPU run's stay on the CPU: pytorch#104767).
    kernels = {"fused": None, "foreach": None, **optimizer_kernels(device)}
    try:
        saved = {**saved, "param_groups": [{**group, **kernels} for group in saved["param_groups"]]}
        if not all(isinstance(state, dict) for state in saved["state"].values()):
            raise ValueError("a parameter's state is not a mapping")
        optimizer.load_state_dict(saved)
        _check_state_shapes(optimizer)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{path}: its optimizer's state does not fit this model "
                              f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None
    # The loaded state is mapped from the checkpoint file (read_checkpoint): copied into memory, so
    # that the file is never written through and its space is freed when the next one replaces it.
    for state in optimizer.state.values():
        state.update({k: v.clone() for k, v in state.items() if torch.is_tensor(v)})


def _check_state_shapes(optimizer: torch.optim.Optimizer) -> None:
    """Each per-parameter state tensor (momentum, moments) has its parameter's shape; torch loads any
    shape, and one that differs would fail only at the first step."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if torch.is_tensor(value) and value.dim() and value.shape != param.shape:
                    raise ValueError(f"{name} of shape {tuple(value.shape)} for a parameter of "
                                     f"{tuple(param.shape)}")


def optimizer_kernels(device: torch.device) -> dict[str, bool]:
    """How the optimizer runs on `device`: on CUDA its fused kernels (every parameter updated in one
    launch, not one per tensor, for hundreds of per-step norm parameters); elsewhere torch's default."""
    return {"fused": True} if device.type == "cuda" else {}
