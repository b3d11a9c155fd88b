"""Module -> a `torch.export` program on disk, checked against the module before it is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path
from .model import CortexNet


def example_inputs(model: CortexNet, batch: int = 2) -> dict[str, torch.Tensor]:
    """What the program is called with, as the spec's input says: images (batch, C, H, W), or sequences
    (batch, frames, C, H, W) of one frame a step (frames past the last step would never be shown), and the
    mask where the stimulus shows one (`then: mask`)."""
    spec, image = model.spec, model.plan.input_shape
    stimulus = spec.input.stimulus
    sequence = stimulus is not None and stimulus.frames is not None
    inputs = {"x": torch.randn(batch, spec.steps + 1, *image) if sequence else torch.randn(batch, *image)}
    if stimulus is not None and stimulus.show is not None and stimulus.then == "mask":
        inputs["mask"] = torch.randn(batch, *image)
    return inputs


def export_program(model: CortexNet, path: str | Path, batch: int = 2) -> float:
    """Export the model (eval mode, any batch size; a sequence spec's program takes one frame a step) to
    `path`; returns the largest difference between the reloaded program and the module on a random batch.
    The file appears only if it checks out."""
    model = model.eval()
    inputs = example_inputs(model, batch)
    x, kwargs = inputs["x"], {k: v for k, v in inputs.items() if k != "x"}
    size = torch.export.Dim("batch", min=1, max=1 << 16)
    program = torch.export.export(model, (x,), kwargs, dynamic_shapes={name: {0: size} for name in inputs})
    with atomic_path(path) as tmp:
        torch.export.save(program, tmp)
        reloaded = torch.export.load(tmp).module()
        with torch.no_grad():
            diff = max(_difference(reloaded, model, x, kwargs), _difference(reloaded, model, x[:1],
                                                                            {k: v[:1] for k, v in kwargs.items()}))
        if not diff <= 1e-5:
            raise RuntimeError(f"the exported program differs from the module by {diff:g}")
    return diff


def _difference(program: Any, model: CortexNet, x: torch.Tensor, kwargs: dict[str, torch.Tensor]) -> float:
    return (program(x, **kwargs) - model(x, **kwargs)).abs().max().item()
