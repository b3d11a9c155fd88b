"""Module -> a `torch.export` program on disk, checked against the module before it is kept."""

from __future__ import annotations

from pathlib import Path

import torch

from .atomic import atomic_path
from .model import CortexNet


def export_program(model: CortexNet, path: str | Path, batch: int = 2) -> float:
    """Export the model (eval mode, any batch size) to `path`; returns the largest difference between
    the reloaded program and the module on a random batch. The file appears only if it checks out."""
    spec = model.spec
    model = model.eval()
    x = torch.randn(batch, spec.input.channels, *spec.input.size)
    dims = {"x": {0: torch.export.Dim("batch", min=1, max=1 << 16)}}
    program = torch.export.export(model, (x,), dynamic_shapes=dims)
    with atomic_path(path) as tmp:
        torch.export.save(program, tmp)
        reloaded = torch.export.load(tmp).module()
        with torch.no_grad():
            diff = max((reloaded(x) - model(x)).abs().max().item(),
                       (reloaded(x[:1]) - model(x[:1])).abs().max().item())
        if not diff <= 1e-5:
            raise RuntimeError(f"the exported program differs from the module by {diff:g}")
    return diff
