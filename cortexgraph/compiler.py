"""The front door: a spec, as a user gives it, and the run's overrides -> its Plan.

    plan = compile("liao2016/frnn4-cifar", steps=8)

Every consumer (the module, the drawing, the summary, training, the command
line, checkpoints) goes through here, so the stages run in one order, with one
set of overrides and one place that checks limits and imports. Like the stages
below it, this module does not import torch.
"""

from __future__ import annotations

from typing import Any

from .analysis import Limits, analyze
from .overrides import Overrides
from .plan import Plan, PlanFamily
from .spec import load_spec, parse_spec

__all__ = ["Limits", "compile", "load_spec", "parse_spec"]  # the front door: what the stages above it import


def compile(spec: Any, *, limits: Limits = Limits(), allow_imports: bool = False, **overrides: Any) -> Plan:
    """The Plan of `spec`: a path, a bundled spec name, YAML text, a dict, a Spec or a training checkpoint
    (its spec). `overrides` replace fields of the spec for this run (see `Overrides`: steps, classes,
    share, norm, size, checkpoint). A SpecError says what is wrong, located in the spec; a spec whose
    model would not fit the `limits` or this machine is refused here, before anything is built."""
    return PlanFamily(analyze(Overrides.of(**overrides).apply(load_spec(spec)), limits, allow_imports)).plan()
