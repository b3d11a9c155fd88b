"""CORnet's published names -> the names of the specs under `specs/cornet/`.

CORnet-Z (`cornet_z.py`): area A's `conv` is the edge into A (`input->V1` for V1). CORnet-R and
CORnet-RT (`cornet_r.py`, `cornet_rt.py`): area A's `conv_input` and `norm_input` are the edge into A,
`conv1` and `norm1` A's cell. Every model's `decoder.linear` is the head's `fc`.

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
from .mapping import WeightMapError, norm_name

_PRENET = {"V1.conv1": "prenet.0.conv", "V1.norm1": "prenet.0.norm",
           "V1.conv2": "prenet.2.conv", "V1.norm2": "prenet.2.norm", "decoder.linear": "head.fc"}
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


_ENTRY = {"V1": "input->V1", "V2": "V1->V2", "V4": "V2->V4", "IT": "V4->IT"}  # the edge into each area
_HEAD = {f"decoder.linear.{p}": f"head.fc.{p}" for p in ("weight", "bias")}


def cornet_z_names(model: CortexNet) -> dict[str, str]:
    return _HEAD | {f"{area}.conv.{p}": f"edges.{edge}.conv.{p}" for area, edge in _ENTRY.items()
                    for p in ("weight", "bias")}


def cornet_r_names(model: CortexNet) -> dict[str, str]:
    """CORnet-R's and CORnet-RT's (one layout)."""
    mapping = dict(_HEAD)
    for area, edge in _ENTRY.items():
        for p in ("weight", "bias"):
            mapping[f"{area}.conv_input.{p}"] = f"edges.{edge}.conv.{p}"
            mapping[f"{area}.norm_input.{p}"] = f"edges.{edge}.norm.{p}"
            mapping[f"{area}.norm1.{p}"] = f"cells.{area}.norm.{p}"
        mapping[f"{area}.conv1.weight"] = f"cells.{area}.conv.weight"
    return mapping


def cornet_s_names(model: CortexNet) -> dict[str, str]:
    ours = model.state_dict()
    mapping = {}
    for theirs, mine in _PRENET.items():
        for param in _BN:
            if f"{mine}.{param}" in ours:
                mapping[f"{theirs}.{param}"] = f"{mine}.{param}"
    groups = model.plan.weight_sets
    for area in ("V2", "V4", "IT"):
        recurrence = groups.get(f"edges.{area}->{area}")
        entry = next((g for g in groups.values() if recurrence is not None and g.tie == recurrence.path), None)
        if entry is None:
            raise WeightMapError(f"{model.spec.name} does not express CORnet-S: {area} has no recurrence "
                                 f"{area}->{area} with an entry edge tied to it (as in the bundled cornet/cornet-s)")
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
