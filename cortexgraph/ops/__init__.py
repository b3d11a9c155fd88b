"""Ops: the registry (torch-free) and, imported on demand, their modules."""

from .registry import OpDef, Params, lookup, register_op, unregister_op

__all__ = ["OpDef", "Params", "lookup", "register_op", "unregister_op"]
