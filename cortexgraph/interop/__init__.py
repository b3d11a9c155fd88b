"""Load other implementations' weights into specs that express them exactly.

Each loader is an explicit name map (theirs -> ours), checked on both sides:
a key left over in their state dict, a parameter of ours that nothing fills, a
shape that differs, or two of their tensors landing on one of ours (a spec that
shares weights the original does not) is an error listing every such name.
"""

from __future__ import annotations

from typing import Any

from ..builder import build
from ..model import CortexNet
from .cornet import cornet_s_names
from .mapping import WeightMapError, load_mapped, read_state_dict
from .torchvision import torchvision_names


def load_torchvision(spec: Any, weights: Any) -> CortexNet:
    """A spec of a torchvision ResNet (e.g. `torchvision/resnet18`) with a torchvision ResNet's weights."""
    model = build(spec)
    state_dict = read_state_dict(weights)
    return load_mapped(model, state_dict, torchvision_names(model, state_dict), "torchvision")


def load_cornet_s(weights: Any, spec: Any = "cornet/cornet-s") -> CortexNet:
    """CORnet-S with weights in CORnet's published layout (`module.V2.conv1.weight`, ...)."""
    model = build(spec)
    state_dict = {k.removeprefix("module."): v for k, v in read_state_dict(weights).items()}
    return load_mapped(model, state_dict, cornet_s_names(model), "CORnet-S")


__all__ = ["WeightMapError", "load_cornet_s", "load_mapped", "load_torchvision", "read_state_dict"]
