"""The Kietzmann lab's published BLT names -> the names of the specs under `specs/blt/`.

`BLT_net_64` (github.com/KietzmannLab/BLT-pytorch-CCN23, `BLT_train/models/BLT_net.py`) names its
modules `retina`, `v1`, `v2`, `v4`, `it` (each a `BLT_Conv` of `bottom_up`, `lateral` and `top_down`
convs), their layer norms `v1_ln` ... `it_ln`, the pooled area `gap` (its `lateral` a Linear) with
`gap_ln`, and `readout`. Here area A's `bottom_up` is the edge into A from the area below, its
`lateral` the edge A->A, its `top_down` the edge from the area above, and `A_ln` A's cell norm. The
pooled area's Linear lateral is a 1x1 conv here and its norm over `[512]` one over `[512, 1, 1]`: the
same numbers, reshaped. V1's lateral and top-down weights are made by the published constructor but
never used by its forward (V1 reads the retina alone), so they have no counterpart and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

_AREAS = {"v1": "V1", "v2": "V2", "v4": "V4", "it": "IT", "gap": "GAP"}
_BELOW = {"V1": "input", "V2": "V1", "V4": "V2", "IT": "V4", "GAP": "IT"}
_ABOVE = {"V2": "V4", "V4": "IT"}
NEVER_USED = ("v1.lateral.weight", "v1.top_down.weight")  # made by BLT_net_64 but never read by its forward


def blt_names(state_dict: Mapping[str, Tensor]) -> dict[str, str]:
    """Their name -> ours, for the names `state_dict` holds (those never used left out)."""
    mapping = {"retina.weight": "prenet.0.conv.weight", "retina.bias": "prenet.0.conv.bias",
               "readout.weight": "head.fc.weight", "readout.bias": "head.fc.bias"}
    for theirs, area in _AREAS.items():
        mapping[f"{theirs}.bottom_up.weight"] = f"edges.{_BELOW[area]}->{area}.conv.weight"
        mapping[f"{theirs}.lateral.weight"] = f"edges.{area}->{area}.conv.weight"
        if area in _ABOVE:
            mapping[f"{theirs}.top_down.weight"] = f"edges.{_ABOVE[area]}->{area}.conv.weight"
        for param in ("weight", "bias"):
            mapping[f"{theirs}_ln.{param}"] = f"cells.{area}.norm.{param}"
    return {theirs: ours for theirs, ours in mapping.items() if theirs in state_dict and theirs not in NEVER_USED}


def pooled_as_maps(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The state dict with the pooled area's Linear lateral as a 1x1 conv and its norm over [512, 1, 1]."""
    shaped = dict(state_dict)
    for name, tensor in state_dict.items():
        if name == "gap.lateral.weight" and tensor.dim() == 2:
            shaped[name] = tensor[:, :, None, None]
        elif name.startswith("gap_ln.") and tensor.dim() == 1:
            shaped[name] = tensor[:, None, None]
    return shaped
