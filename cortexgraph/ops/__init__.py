"""Ops: the registry (torch-free) and, imported on demand, their modules."""

from .op_params import Params
from .registry import OpDef, lookup, register_op, unregister_op

__all__ = ["OpDef", "Params", "lookup", "register_op", "unregister_op"]
