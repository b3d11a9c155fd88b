"""The mechanism every loader shares: read a state dict, check a name map, copy."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..checkpoint import check_finite, read_torch_file
from ..model import CortexNet


class WeightMapError(ValueError):
    """A state dict that does not fit the spec it is loaded into."""


def read_state_dict(source: Any) -> dict[str, Tensor]:
    """A state dict from a module, a dict, or a checkpoint file (read with weights_only=True)."""
    if isinstance(source, torch.nn.Module):
        return source.state_dict()
    if isinstance(source, (str, Path)):  # the one reader of weight files: listing checked, tensors mapped
        source = read_torch_file(source, "a state dict", WeightMapError)
    if isinstance(source, Mapping) and "state_dict" in source and isinstance(source["state_dict"], Mapping):
        source = source["state_dict"]
    if not isinstance(source, Mapping):
        raise WeightMapError(f"expected a state dict, a module or a checkpoint file; got {type(source).__name__}")
    return dict(source)


def load_mapped(model: CortexNet, state_dict: Mapping[str, Tensor], mapping: Mapping[str, str],
                origin: str, allow_nonfinite: bool = False) -> CortexNet:
    """Copy `state_dict` into `model` through `mapping` (their name -> ours), checking everything: names
    and shapes on both sides, and that every value is finite (unless `allow_nonfinite`)."""
    ours = model.state_dict()
    problems = [f"{origin}'s {k!r} has no counterpart in {model.spec.name}" for k in state_dict if k not in mapping]
    targets: dict[str, str] = {}
    for theirs, mine in mapping.items():
        if theirs not in state_dict:
            problems.append(f"{model.spec.name}'s {mine!r} gets no value from {origin} (expected {theirs!r})")
        elif mine not in ours:
            problems.append(f"{origin}'s {theirs!r} maps to {mine!r}, which {model.spec.name} does not have")
        elif mine in targets:
            problems.append(f"{origin}'s {targets[mine]!r} and {theirs!r} both map to {mine!r}: "
                            f"{model.spec.name} shares weights that {origin} does not")
        elif tuple(ours[mine].shape) != tuple(state_dict[theirs].shape):
            problems.append(f"{origin}'s {theirs!r} is {tuple(state_dict[theirs].shape)} but {mine!r} is "
                            f"{tuple(ours[mine].shape)}")
        targets.setdefault(mine, theirs)
    expected = set(mapping.values())
    problems += [f"{model.spec.name}'s {k!r} gets no value from {origin}" for k in ours if k not in expected]
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise WeightMapError(f"cannot load {origin} weights into {model.spec.name}:\n  {shown}")
    check_finite({theirs: state_dict[theirs] for theirs in targets.values()}, f"{origin}'s weights", allow_nonfinite,
                 WeightMapError)
    model.load_state_dict({mine: state_dict[theirs] for mine, theirs in targets.items()}, strict=True)
    return model


def norm_name(ours: Mapping[str, object], name: str, step: int) -> str:
    """`edges.X.bn1.weight`, or `edges.X.bn1.t3.weight` where the weights run at several steps."""
    if name in ours:
        return name
    site, _, param = name.rpartition(".")
    stepped = f"{site}.t{step}.{param}"
    return stepped if stepped in ours else name
