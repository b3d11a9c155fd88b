"""torchvision ResNet names -> the names of a spec that unrolls it (one residual block per step:
`specs/torchvision/resnet18.yaml` fires `layer1.0` and `layer1.1` as S1->S1 at steps 1 and 2, and so on)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..model import CortexNet
from .mapping import WeightMapError, norm_name

_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(.+)$")
_RENAME = {"downsample.0.": "shortcut.", "downsample.1.": "shortcut_norm."}


def torchvision_names(model: CortexNet, state_dict: Mapping[str, object]) -> dict[str, str]:
    """Map torchvision's keys onto the model's: the k-th block (layer1.0, layer1.1, layer2.0, ...)
    is the transition that runs at the k-th step."""
    blocks = sorted({(int(m[1]), int(m[2])) for k in state_dict if (m := _BLOCK.match(k))})
    calls = [call for updates in model.plan.schedule[1:] for update in updates for call in update.calls]
    if len(calls) != len(blocks) or len(calls) != model.plan.steps:
        raise WeightMapError(f"{model.spec.name} runs {len(calls)} transitions over {model.plan.steps} steps; "
                             f"a torchvision ResNet with {len(blocks)} blocks needs one transition per step, "
                             "one per block")
    where = dict(zip(blocks, calls))
    ours = model.state_dict()
    mapping = {}
    for key in state_dict:
        if key.startswith("conv1."):
            mapping[key] = "prenet.0.conv." + key.removeprefix("conv1.")
        elif key.startswith("bn1."):
            mapping[key] = "prenet.0.norm." + key.removeprefix("bn1.")
        elif key.startswith("fc."):
            mapping[key] = "head." + key
        elif m := _BLOCK.match(key):
            call = where[(int(m[1]), int(m[2]))]
            rest = m[3]
            for old, new in _RENAME.items():
                rest = rest.replace(old, new)
            mapping[key] = norm_name(ours, f"{call.weights.path}.{rest}", call.norm_step)
    return mapping
