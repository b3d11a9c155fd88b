"""The spec's flexible notations: names, sizes, steps, sharing and readouts as a user may write them, each
parsed by a small validator with a message of its own (one clear error per mistake, instead of pydantic's
list of union members), and the JSON Schema each shows."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from .errors import did_you_mean
from .step_rules import StepRule

VERSION = 1
AREA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EDGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+<>-]*$")  # no dots: names become module paths
SPEC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")  # one safe path component: names become files


def _check_area_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"an area name is text, not {kind_of(value)}")
    if not AREA_NAME.match(value):
        raise ValueError(f"area name {value!r} must be letters, digits and '_', not starting with a digit")
    if value == "input":
        raise ValueError("'input' is reserved for the pre-net's output; choose another area name")
    return value


def _check_edge_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"an edge name is text, not {kind_of(value)}")
    if not EDGE_NAME.match(value):
        raise ValueError(f"edge name {value!r} may hold letters, digits and '_', '-', '+', '<', '>' (no dots)")
    return value


def _check_spec_name(value: Any) -> str:
    # The name becomes a folder (runs/<name>) and file names (<name>-rolled.svg): it must stay one
    # path component, so that a spec never decides to write outside the folder it is run in.
    if not isinstance(value, str):
        raise ValueError(f"a spec's name is text, not {kind_of(value)}")
    if not SPEC_NAME.match(value):
        raise ValueError(f"name {value!r} is not a safe file name: use up to 100 letters, digits, '.', '_', '+' "
                         "and '-', starting with a letter or digit (it names the run folder and drawings)")
    return value


def _parse_size(value: Any) -> tuple[int, int]:
    sides = [value, value] if is_int(value) else value
    if isinstance(sides, list) and len(sides) == 2 and all(is_int(v) for v in sides):
        if min(sides) < 1:
            raise ValueError(f"a size must be at least 1, got {value}")  # as written: 0, not [0, 0]
        return (sides[0], sides[1])
    raise ValueError(f"expected a size: a whole number or [height, width]; got {kind_of(value)}")


def _dump_size(size: tuple[int, int]) -> int | list[int]:
    return size[0] if size[0] == size[1] else list(size)


def _parse_steps(value: Any) -> StepRule:
    return StepRule.parse(value)


def _parse_share(value: Any) -> str | tuple[tuple[int, ...], ...]:
    if value in ("time", "none"):
        return value
    if isinstance(value, list) and value and all(isinstance(g, list) and g for g in value):
        if all(is_int(s) and s >= 0 for g in value for s in g):
            return tuple(tuple(g) for g in value)
    hint = did_you_mean(value, ["time", "none"]) if isinstance(value, str) else None
    raise ValueError("share is 'time' (one set of weights for all steps), 'none' (a set per step) "
                     "or a list of step groups such as [[1, 2], [3, 4]]" + (f"; {hint}" if hint else ""))


def _dump_share(value: str | tuple) -> Any:
    return value if isinstance(value, str) else [list(g) for g in value]


def _parse_readout_step(value: Any) -> int | tuple[int, ...]:
    if is_int(value) and value >= 0:
        return value
    if isinstance(value, list) and value and all(is_int(v) and v >= 0 for v in value):
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("list the readout steps in increasing order, each once")
        return tuple(value)
    raise ValueError(f"expected a step (a whole number from 0) or a list of steps; got {kind_of(value)}")


def _parse_readout_area(value: Any) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if not value:
            raise ValueError("list at least one readout area")
        if len(set(value)) < len(value):
            raise ValueError("list each readout area once")
        return tuple(value)
    raise ValueError(f"expected an area's name or a list of names; got {kind_of(value)}")


def _parse_version(value: Any) -> int:
    if value != VERSION or not is_int(value):
        raise ValueError(f"unsupported spec version {value!r}; this cortexgraph reads version {VERSION}")
    return value


STEPS_SCHEMA = {
    "description": "'all'/'every', 'once' (step 0, inputs only), a step, a list of steps, or {from, to, every}",
    "anyOf": [
        {"enum": ["all", "every", "once"]},
        {"type": "integer", "minimum": 0},
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
        {"type": "object", "additionalProperties": False, "properties": {
            "from": {"type": "integer", "minimum": 0}, "to": {"type": "integer", "minimum": 0},
            "every": {"type": "integer", "minimum": 1}}},
    ],
}
_SIZE_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 1},
                          {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2}]}
_SHARE_SCHEMA = {"anyOf": [{"enum": ["time", "none"]},
                           {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0}}}]}

AreaName = Annotated[str, PlainValidator(_check_area_name),
                     WithJsonSchema({"type": "string", "pattern": AREA_NAME.pattern})]
EdgeName = Annotated[str, PlainValidator(_check_edge_name),
                     WithJsonSchema({"type": "string", "pattern": EDGE_NAME.pattern})]
HeightWidth = Annotated[tuple[int, int], PlainValidator(_parse_size), PlainSerializer(_dump_size),
                 WithJsonSchema(_SIZE_SCHEMA)]
Steps = Annotated[StepRule, PlainValidator(_parse_steps), PlainSerializer(lambda r: r.written()),
                  WithJsonSchema(STEPS_SCHEMA)]
Share = Annotated[str | tuple, PlainValidator(_parse_share), PlainSerializer(_dump_share),
                  WithJsonSchema(_SHARE_SCHEMA)]
ReadoutArea = Annotated[str | tuple, PlainValidator(_parse_readout_area),
                        PlainSerializer(lambda v: list(v) if isinstance(v, tuple) else v),
                        WithJsonSchema({"anyOf": [{"type": "string"},
                                                  {"type": "array", "items": {"type": "string"}, "minItems": 1}]})]
Version = Annotated[int, PlainValidator(_parse_version), WithJsonSchema({"const": VERSION})]
SpecName = Annotated[str, PlainValidator(_check_spec_name),
                     WithJsonSchema({"type": "string", "pattern": SPEC_NAME.pattern})]
ReadoutStep = Annotated[int | tuple, PlainValidator(_parse_readout_step),
                        PlainSerializer(lambda v: list(v) if isinstance(v, tuple) else v),
                        WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0},
                                                  {"type": "array", "items": {"type": "integer", "minimum": 0}}]})]


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
