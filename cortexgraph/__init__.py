"""cortexgraph: compile specs of multi-area recurrent vision networks into PyTorch modules.

    from cortexgraph import build
    model = build("liao2016/frnn4-imagenet")      # a path, a bundled name, YAML text or a dict
    logits = model(images)

The spec language, its checks and the front door (`load_spec`, `analyze`,
`compile`, which gives a spec's Plan) do not import torch, so validating stays
fast; `build` and the rest load it on first use.
"""

from __future__ import annotations

from typing import Any

from .analysis import Analysis, Limits, analyze
from .compiler import compile
from .errors import Problem, SpecError
from .ops.cell_registry import register_cell
from .ops.op_params import Params
from .ops.registry import register_op
from .overrides import Overrides
from .spec import Spec, load_spec

__version__ = "0.1.0"

_LAZY = {  # name -> module that defines it, imported on first use (these need torch)
    "build": "builder",
    "CortexNet": "model",
    "InputError": "model",
    "BeyondHorizonError": "plan",
    "Plan": "plan",
    "PlanFamily": "plan",
    "OpContext": "ops.layers",
    "summarize": "summary",
    "draw": "drawing",
    "features": "extract",
    "write_features": "extract",
    "read_features": "feature_files",
    "AreaLayers": "extract",
    "register_experiment": "experiments",  # (`probe` stays cortexgraph.probe.probe: the name is its module's)
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'cortexgraph' has no attribute {name!r}")


__all__ = ["Analysis", "Limits", "Overrides", "Params", "Problem", "Spec", "SpecError", "analyze", "compile",
           "load_spec", "register_cell", "register_op", *_LAZY]
