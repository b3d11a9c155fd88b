"""cortexgraph: compile specs of multi-area recurrent vision networks into PyTorch modules.

    from cortexgraph import load_spec, analyze
    analysis = analyze(load_spec("liao2016/frnn4-imagenet"))
"""

from .analysis import Analysis, Limits, analyze
from .errors import Problem, SpecError
from .ops.registry import register_op
from .spec import Spec, load_spec

__all__ = ["Analysis", "Limits", "Problem", "Spec", "SpecError", "analyze", "load_spec", "register_op"]
__version__ = "0.1.0"
