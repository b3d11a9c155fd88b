"""PyTorchTNN's names (github.com/neuroagents-lab/PyTorchTNN) -> the names of a spec that unrolls as its
`TemporalGraph` does (`silence: computed`, every edge a step of delay).

A TemporalGraph node is an area: `<A>._pre_memory.conv` is the one driving edge into A (the input edge of
an input node), `<A>._recurrent_cell` A's cell, and the readout area's `_post_memory`, an average pool then
a `FullyConnected` (`sequential_mem.1.lin`), the head's linear layer. Cells, theirs -> ours:

- `GRUCell`: `conv_ru` holds the reset gate's conv, then the update gate's (split into `reset` and
  `update`); `conv_c` is `candidate`; `ln_r_pre`, `ln_u_pre`, `ln_c_pre` are `norm_reset`, `norm_update`,
  `norm_candidate`.
- `LSTMCell`: `conv` holds the gates in the order i, j, f, o; ours (`gates`) in torch.nn.LSTMCell's order
  i, f, g, o (j is g); `ln_input`, `ln_transform`, `ln_forget`, `ln_output`, `ln_state` are `norm_input`,
  `norm_candidate`, `norm_forget`, `norm_output`, `norm_memory`.
- `ReciprocalGatedCell`: `inp2cell_conv`, `cell_tau_conv`, `cell_gate_conv`, `out_tau_conv` and
  `cell2out_conv` (each `.conv`) are `input_to_memory`, `memory_tau`, `memory_gate`, `value_tau` and
  `value_gate`; `out_gate_conv` (`residual_to_out_gate`) is the edge into A's `out_gate`; `ln_cell` and
  `ln_out` are `norm_memory` and `norm_value`.

The cells' constants are parameters of the spec, not weights: PyTorchTNN's LSTM adds 1.0 to its forget
gate and its GRU 1.0 to its reset gate (`forget_bias: 1.0`, `reset_bias: 1.0` in the spec).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..model import CortexNet
from .mapping import WeightMapError

_GRU = {"ln_r_pre": "norm_reset", "ln_u_pre": "norm_update", "ln_c_pre": "norm_candidate", "conv_c": "candidate"}
_LSTM = {"ln_input": "norm_input", "ln_transform": "norm_candidate", "ln_forget": "norm_forget",
         "ln_output": "norm_output", "ln_state": "norm_memory"}
_RGC = {"inp2cell_conv.conv": "input_to_memory", "cell_tau_conv.conv": "memory_tau",
        "cell_gate_conv.conv": "memory_gate", "out_tau_conv.conv": "value_tau", "cell2out_conv.conv": "value_gate",
        "ln_cell": "norm_memory", "ln_out": "norm_value"}
_PARAMS = ("weight", "bias")


def pytorchtnn_weights(model: CortexNet, state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Their tensors (with the pieces of those that hold several of ours, e.g. `conv_ru.weight[reset]`)
    and the map from each to our name."""
    tensors, mapping = dict(state_dict), {}
    plan = model.plan
    for area in model.spec.areas:
        driving = [e for e in plan.edges.values() if e.target == area and e.drives]
        sets = [s for e in driving for s in plan.weight_sets.values() if s.edge == e.name]
        if len(driving) != 1 or len(sets) != 1 or sets[0].key is not None:
            raise WeightMapError(f"cannot load PyTorchTNN weights into {model.spec.name}: area {area!r} has "
                                 f"{len(driving)} driving edges ({', '.join(e.name for e in driving) or 'none'}) "
                                 "and PyTorchTNN's node one pre-memory conv, its weights shared across time")
        for p in _PARAMS:
            mapping[f"{area}._pre_memory.conv.{p}"] = f"{sets[0].path}.conv.{p}"
        for edge in plan.edges.values():
            if edge.target == area and edge.into == "out_gate":
                for p in _PARAMS:
                    mapping[f"{area}._recurrent_cell.out_gate_conv.conv.{p}"] = f"edges.{edge.name}.conv.{p}"
        cell, theirs, ours = plan.area_cells[area].name, f"{area}._recurrent_cell", f"cells.{area}"
        if cell == "gru":
            for p in _PARAMS:
                for name, piece in _split(tensors, f"{theirs}.conv_ru.{p}", ("reset", "update")).items():
                    mapping[name] = f"{ours}.{piece}.{p}"
            mapping |= {f"{theirs}.{a}.{p}": f"{ours}.{b}.{p}" for a, b in _GRU.items() for p in _PARAMS}
        elif cell == "lstm":
            for p in _PARAMS:
                key = f"{theirs}.conv.{p}"
                if key in tensors:
                    i, j, f, o = tensors.pop(key).chunk(4, 0)
                    tensors[f"{key}[i, f, j, o]"] = torch.cat([i, f, j, o], 0)
                mapping[f"{key}[i, f, j, o]"] = f"{ours}.gates.{p}"
            mapping |= {f"{theirs}.{a}.{p}": f"{ours}.{b}.{p}" for a, b in _LSTM.items() for p in _PARAMS}
        elif cell == "rgc":
            mapping |= {f"{theirs}.{a}.{p}": f"{ours}.{b}.{p}" for a, b in _RGC.items() for p in _PARAMS}
    for p in _PARAMS:
        mapping[f"{model.spec.readout.areas[-1]}._post_memory.sequential_mem.1.lin.{p}"] = f"head.fc.{p}"
    ours = model.state_dict()
    # (a name of theirs with nothing of ours to fill, e.g. a bias the spec's convs do not have, is left in
    # the mapping only where they hold it, so that the check names what is missing on either side)
    return tensors, {k: v for k, v in mapping.items() if k in tensors or v in ours}


def _split(tensors: dict[str, Tensor], key: str, pieces: tuple[str, ...]) -> dict[str, str]:
    """Replace `key` by its equal pieces along the output channels, `key[piece]`; their names -> pieces."""
    if key in tensors:
        for piece, part in zip(pieces, tensors.pop(key).chunk(len(pieces), 0)):
            tensors[f"{key}[{piece}]"] = part.clone()
    return {f"{key}[{piece}]": piece for piece in pieces}

