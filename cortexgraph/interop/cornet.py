"""CORnet-S's published names -> the names of `specs/cornet/cornet-s.yaml`.

CORnet-S (github.com/dicarlolab/CORnet, `cornet_s.py`) names its modules
V1 (the pre-net here), V2, V4, IT (`CORblock_S`) and decoder. In each block,
`conv_input`, `skip` and `norm_skip` serve only the first of its `times`
steps: here they belong to the area's entry edge. `conv1-3` are shared by all
steps: here they belong to the area's recurrence, which the entry ties to.
`norm{k}_{t}` is the norm of the block's t-th step: t = 0 is the entry edge's,
t >= 1 the recurrence's at its t-th step.
"""

from __future__ import annotations

from ..model import CortexNet
from .mapping import norm_name

_PRENET = {"V1.conv1": "prenet.0.conv", "V1.norm1": "prenet.0.norm",
           "V1.conv2": "prenet.2.conv", "V1.norm2": "prenet.2.norm", "decoder.linear": "head.fc"}
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def cornet_s_names(model: CortexNet) -> dict[str, str]:
    ours = model.state_dict()
    mapping = {}
    for theirs, mine in _PRENET.items():
        for param in _BN:
            if f"{mine}.{param}" in ours:
                mapping[f"{theirs}.{param}"] = f"{mine}.{param}"
    groups = model.plan.weight_sets
    for area in ("V2", "V4", "IT"):
        recurrence = groups[f"edges.{area}->{area}"]
        entry = next(g for g in groups.values() if g.tie == recurrence.path)
        for name in ("conv_input", "skip"):
            mapping[f"{area}.{name}.weight"] = f"{entry.path}.{name}.weight"
        for name in ("conv1", "conv2", "conv3"):
            mapping[f"{area}.{name}.weight"] = f"{recurrence.path}.{name}.weight"
        runs = [(entry, entry.steps[0])] + [(recurrence, step) for step in recurrence.steps]
        for param in _BN:
            mapping[f"{area}.norm_skip.{param}"] = f"{entry.path}.norm_skip.{param}"
            for t, (group, step) in enumerate(runs):
                for k in (1, 2, 3):
                    ours_name = norm_name(ours, f"{group.path}.norm{k}.{param}", step)
                    mapping[f"{area}.norm{k}_{t}.{param}"] = ours_name
    return mapping
