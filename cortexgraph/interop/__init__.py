"""Load other implementations' weights into specs that express them exactly.

Each loader is an explicit name map (theirs -> ours), checked on both sides:
a key left over in their state dict, a parameter of ours that nothing fills, a
shape that differs, or two of their tensors landing on one of ours (a spec that
shares weights the original does not) is an error listing every such name.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..builder import build
from ..compiler import load_spec, parse_spec
from ..model import CortexNet
from .blt import NEVER_USED, blt_names, pooled_as_maps
from .cornet import cornet_r_names, cornet_s_names, cornet_z_names
from .mapping import WeightMapError, load_mapped, read_state_dict
from .pytorchtnn import pytorchtnn_weights
from .torchvision import torchvision_names


def load_torchvision(spec: Any, weights: Any, allow_nonfinite: bool = False) -> CortexNet:
    """A spec of a torchvision ResNet (e.g. `torchvision/resnet18`) with a torchvision ResNet's weights."""
    model = build(spec)
    state_dict = read_state_dict(weights)
    return load_mapped(model, state_dict, torchvision_names(model, state_dict), "torchvision", allow_nonfinite)


_CORNETS = {"cornet-z": ("CORnet-Z", cornet_z_names), "cornet-r": ("CORnet-R", cornet_r_names),
            "cornet-rt": ("CORnet-RT", cornet_r_names), "cornet-s": ("CORnet-S", cornet_s_names)}


def load_cornet(name: str, weights: Any, spec: Any = None, allow_nonfinite: bool = False) -> CortexNet:
    """A CORnet (`cornet-z`, `cornet-r`, `cornet-rt`, `cornet-s`) with weights in CORnet's published layout
    (`module.V1.conv_input.weight`, ...: a state dict, a module or a checkpoint file, as CORnet saves them).
    `spec` is the bundled `cornet/<name>` unless given (one that expresses the same model). Weights that are
    not finite are refused unless `allow_nonfinite`."""
    if name not in _CORNETS:
        raise ValueError(f"unknown CORnet {name!r}; known: {', '.join(_CORNETS)}")
    origin, names = _CORNETS[name]
    model = build(spec if spec is not None else f"cornet/{name}")
    state_dict = {k.removeprefix("module."): v for k, v in read_state_dict(weights).items()}
    return load_mapped(model, state_dict, names(model), origin, allow_nonfinite)


def load_cornet_s(weights: Any, spec: Any = "cornet/cornet-s", allow_nonfinite: bool = False) -> CortexNet:
    """CORnet-S with weights in CORnet's published layout (`module.V2.conv1.weight`, ...)."""
    return load_cornet("cornet-s", weights, spec, allow_nonfinite)


_BLTS = ("blt", "bl", "bt", "b", "blt-multiplicative", "bl-last")


def load_blt(name: str, weights: Any, spec: Any = None, allow_nonfinite: bool = False) -> CortexNet:
    """A BLT of the Kietzmann lab (`blt`, `bl`, `bt`, `b`, `blt-multiplicative`, `bl-last`) with weights in
    the layout of their published `BLT_net_64` (`retina.weight`, `v2.lateral.weight`, `gap_ln.weight`, ...:
    a state dict, a module or a `.pth` file as their training saves it). `spec` is the bundled `blt/<name>`
    unless given; a state dict with a `readout.bias` (trained with `classifier_bias` 1) gets the bundled
    spec with `head.bias: true`. V1's lateral and top-down weights, which their forward never uses, are
    left out with a warning. Weights that are not finite are refused unless `allow_nonfinite`."""
    if name not in _BLTS:
        raise ValueError(f"unknown BLT {name!r}; known: {', '.join(_BLTS)}")
    state_dict = pooled_as_maps(read_state_dict(weights))
    unused = [key for key in NEVER_USED if key in state_dict]
    if unused:
        warnings.warn(f"not loaded: {' and '.join(unused)}, which BLT_net_64 holds but its forward never uses",
                      UserWarning, stacklevel=2)
        state_dict = {k: v for k, v in state_dict.items() if k not in unused}
    if spec is None:
        spec = load_spec(f"blt/{name}")
        if "readout.bias" in state_dict and not spec.readout.head.bias:
            data = spec.to_dict()
            data["readout"]["head"]["bias"] = True
            spec = parse_spec(data, spec.source)
    return load_mapped(build(spec), state_dict, blt_names(state_dict), "BLT_net_64", allow_nonfinite)


def load_pytorchtnn(spec: Any, weights: Any, allow_nonfinite: bool = False) -> CortexNet:
    """A spec that unrolls as PyTorchTNN's `TemporalGraph` does (e.g. `convrnn/gru-stream`, `lstm-stream`,
    `rgc-stream`: one node an area, `silence: computed`) with a TemporalGraph's state dict (`V1._pre_memory.
    conv.weight`, `V2._recurrent_cell.conv_ru.weight`, ...: a state dict, a module or a checkpoint file; see
    `cortexgraph.interop.pytorchtnn` for the names). Weights that are not finite are refused unless
    `allow_nonfinite`."""
    model = build(spec)
    tensors, mapping = pytorchtnn_weights(model, read_state_dict(weights))
    return load_mapped(model, tensors, mapping, "PyTorchTNN", allow_nonfinite)


__all__ = ["WeightMapError", "load_blt", "load_cornet", "load_cornet_s", "load_mapped", "load_pytorchtnn",
           "load_torchvision", "read_state_dict"]
