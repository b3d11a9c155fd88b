"""pydantic's validation errors as located problems: `file:line:col: path.to.field: what is wrong (hint)`, one
message per mistake, with the fields a misspelt key may have meant."""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

from .errors import Loc, Problem, did_you_mean, known_list
from .notations import kind_of
from .source import SourceMap

# What a missing top-level field of a spec is for, with an example.
_FIELD_HINTS = {
    "cortexgraph": "a spec starts with 'cortexgraph: 1'",
    "steps": "how many steps to unroll, e.g. 'steps: 8'",
    "readout": "e.g. readout: {area: IT, head: {classes: 10}}",
    "inputs": "which areas receive the pre-net's output, e.g. inputs: {V1: once}",
}


def located_errors(exc: ValidationError, source: SourceMap, prefix: Loc, model: type[BaseModel]) -> list[Problem]:
    """pydantic's errors as located problems; `prefix` is where `model` sits in the spec."""
    problems = [_located(err, source, prefix, model) for err in exc.errors()]
    # A misspelt field shows as unknown and as missing; the first says it all.
    misspelt = {(p.loc[:-1], p.hint) for p in problems if p.message.startswith("unknown field")}
    return [p for p in problems if not (p.message.startswith("missing required field")
                                        and (p.loc[:-1], f"did you mean {p.loc[-1]!r}?") in misspelt)]


def _located(err: Any, source: SourceMap, prefix: Loc, model: type[BaseModel]) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    on_key = kind == "extra_forbidden"
    # pydantic marks an error in a mapping's key with a last '[key]'; a key written "[key]" is not that.
    if len(loc) >= 2 and loc[-1] == "[key]" and kind != "extra_forbidden":
        loc, on_key = loc[:-1], True
    # pydantic names the member of a union a value was tried against inside the loc (`readout.loss
    # ['list[constrained-float]'][0]`): not a place in the spec. A key the spec wrote is in its source map.
    # An unknown key is the written one, whatever it holds (`{"[": 1}`).
    tags = len(loc) - 1 if kind == "extra_forbidden" else len(loc)
    loc = tuple(part for i, part in enumerate(loc) if i >= tags or not (
        isinstance(part, str) and "[" in part and (prefix + loc[:i + 1]) not in source.values))
    value = err.get("input")
    hint = None
    if kind not in ("missing", "extra_forbidden") and source.values:
        # Shorthands (`V2: down` for `V2: {op: down}`) put pydantic's loc below what was written.
        while loc and (prefix + loc) not in source.values and (prefix + loc[:-1]) in source.values:
            loc = loc[:-1]
    if kind == "missing":
        message = f"missing required field {loc[-1]!r}"
        hint = _FIELD_HINTS.get(str(loc[-1]))
    elif kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        message = f"unknown field {loc[-1]!r}"
        hint = did_you_mean(loc[-1], known) or (f"known: {known_list(known)}" if known else None)
    elif kind == "literal_error":
        expected = err["ctx"]["expected"]
        message = f"{value!r} is not allowed here; expected {expected}"
        hint = did_you_mean(value, re.findall(r"'([^']*)'", expected))
    # Spec and op parameters validate strictly: a wrong kind of value is always a `*_type` error, never
    # a `*_parsing` one (nothing is parsed from text).
    elif kind == "int_type":
        message = f"expected a whole number, got {kind_of(value)}"
    elif kind == "float_type":
        message = f"expected a number, got {kind_of(value)}"
    elif kind == "string_type":
        message = f"expected text, got {kind_of(value)}"
    elif kind == "bool_type":
        message = f"expected true or false, got {kind_of(value)}"
    elif kind in ("dict_type", "model_type"):
        message = f"expected a mapping (key: value), got {kind_of(value)}"
    elif kind in ("list_type", "tuple_type"):
        message = f"expected a list, got {kind_of(value)}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(err["ctx"].values()))
        message = f"must be {op} {bound}, got {value!r}"
    elif kind == "too_short":
        message = "must not be empty"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
    else:
        message = err["msg"]
    return source.place(Problem(prefix + loc, message, hint), key=on_key)


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names a model accepts at `loc` inside `model` (for 'did you mean')."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp
