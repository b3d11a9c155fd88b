"""The spec language: one pydantic schema for YAML and JSON specs.

The schema is declared once here; the JSON Schema (`cortexgraph schema`) comes
from it. Flexible notations (an op as a bare name, steps as `all`, a list or a
range) are parsed by small validators with messages of their own, so a user
sees one clear error per mistake instead of pydantic's list of union members.
Cross-references (area names, ties, shapes) are the analysis's job.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PlainSerializer,
    PlainValidator,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

from .errors import Loc, Problem, SpecError, did_you_mean, known_list
from .ops.cell_registry import known_cells
from .ops.norm_spec import BATCH_PER_STEP, NormSetting
from .ops.registry import Activation
from .source import CHECKPOINT_SUFFIXES, SourceMap, TextLimits, parse_text, read_file
from .step_rules import StepRule

VERSION = 1
AREA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EDGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+<>-]*$")  # no dots: names become module paths
SPEC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")  # one safe path component: names become files


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


# --- flexible scalar notations -------------------------------------------------------------


def _check_area_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"an area name is text, not {_kind(value)}")
    if not AREA_NAME.match(value):
        raise ValueError(f"area name {value!r} must be letters, digits and '_', not starting with a digit")
    if value == "input":
        raise ValueError("'input' is reserved for the pre-net's output; choose another area name")
    return value


def _check_edge_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"an edge name is text, not {_kind(value)}")
    if not EDGE_NAME.match(value):
        raise ValueError(f"edge name {value!r} may hold letters, digits and '_', '-', '+', '<', '>' (no dots)")
    return value


def _check_spec_name(value: Any) -> str:
    # The name becomes a folder (runs/<name>) and file names (<name>-rolled.svg): it must stay one
    # path component, so that a spec never decides to write outside the folder it is run in.
    if not isinstance(value, str):
        raise ValueError(f"a spec's name is text, not {_kind(value)}")
    if not SPEC_NAME.match(value):
        raise ValueError(f"name {value!r} is not a safe file name: use up to 100 letters, digits, '.', '_', '+' "
                         "and '-', starting with a letter or digit (it names the run folder and drawings)")
    return value


def _parse_size(value: Any) -> tuple[int, int]:
    sides = [value, value] if _is_int(value) else value
    if isinstance(sides, list) and len(sides) == 2 and all(_is_int(v) for v in sides):
        if min(sides) < 1:
            raise ValueError(f"a size must be at least 1, got {value}")  # as written: 0, not [0, 0]
        return (sides[0], sides[1])
    raise ValueError(f"expected a size: a whole number or [height, width]; got {_kind(value)}")


def _dump_size(size: tuple[int, int]) -> int | list[int]:
    return size[0] if size[0] == size[1] else list(size)


def _parse_steps(value: Any) -> StepRule:
    return StepRule.parse(value)


def _parse_share(value: Any) -> str | tuple[tuple[int, ...], ...]:
    if value in ("time", "none"):
        return value
    if isinstance(value, list) and value and all(isinstance(g, list) and g for g in value):
        if all(_is_int(s) and s >= 0 for g in value for s in g):
            return tuple(tuple(g) for g in value)
    hint = did_you_mean(value, ["time", "none"]) if isinstance(value, str) else None
    raise ValueError("share is 'time' (one set of weights for all steps), 'none' (a set per step) "
                     "or a list of step groups such as [[1, 2], [3, 4]]" + (f"; {hint}" if hint else ""))


def _dump_share(value: str | tuple) -> Any:
    return value if isinstance(value, str) else [list(g) for g in value]


def _parse_readout_step(value: Any) -> int | tuple[int, ...]:
    if _is_int(value) and value >= 0:
        return value
    if isinstance(value, list) and value and all(_is_int(v) and v >= 0 for v in value):
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("list the readout steps in increasing order, each once")
        return tuple(value)
    raise ValueError(f"expected a step (a whole number from 0) or a list of steps; got {_kind(value)}")


def _parse_readout_area(value: Any) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if not value:
            raise ValueError("list at least one readout area")
        if len(set(value)) < len(value):
            raise ValueError("list each readout area once")
        return tuple(value)
    raise ValueError(f"expected an area's name or a list of names; got {_kind(value)}")


def _parse_version(value: Any) -> int:
    if value != VERSION or not _is_int(value):
        raise ValueError(f"unsupported spec version {value!r}; this cortexgraph reads version {VERSION}")
    return value


_STEPS_SCHEMA = {
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
                  WithJsonSchema(_STEPS_SCHEMA)]
Share = Annotated[str | tuple, PlainValidator(_parse_share), PlainSerializer(_dump_share),
                  WithJsonSchema(_SHARE_SCHEMA)]
ReadoutArea = Annotated[str | tuple, PlainValidator(_parse_readout_area),
                        PlainSerializer(lambda v: list(v) if isinstance(v, tuple) else v),
                        WithJsonSchema({"anyOf": [{"type": "string"},
                                                  {"type": "array", "items": {"type": "string"}, "minItems": 1}]})]
ReadoutStep = Annotated[int | tuple, PlainValidator(_parse_readout_step),
                        PlainSerializer(lambda v: list(v) if isinstance(v, tuple) else v),
                        WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0},
                                                  {"type": "array", "items": {"type": "integer", "minimum": 0}}]})]


# --- ops and edges ------------------------------------------------------------------------------


class OpRef(Model):
    """An op: a bare name (`residual`) or one name with its parameters (`{down: {kernel: 3}}`)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, OpRef):
            return value
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and "name" in value and set(value) <= {"name", "params"}:
            return value  # the long form, as Python code writes it: OpRef(name="down")
        if isinstance(value, dict) and len(value) == 1:
            (name, params), = value.items()
            if not isinstance(name, str):
                raise ValueError(f"an op name is text, not {_kind(name)}")
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise ValueError(f"the parameters of op {name!r} are a mapping such as {{kernel: 3}}, "
                                 f"not {_kind(params)}")
            return {"name": name, "params": params}
        if isinstance(value, dict):
            raise ValueError("an op is one name with its parameters, such as {down: {kernel: 3}}; "
                             f"this mapping has {len(value)} keys ({known_list(map(str, value), 4)})")
        raise ValueError("expected an op: a name such as 'residual', or {name: {param: value}}; "
                         f"got {_kind(value)}")

    @model_serializer
    def _dump(self) -> Any:
        return {self.name: dict(self.params)} if self.params else self.name

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict:
        return {"description": "an op name, or {name: {param: value}}",
                "anyOf": [{"type": "string"},
                          {"type": "object", "minProperties": 1, "maxProperties": 1,
                           "additionalProperties": {"type": ["object", "null"]}}]}


class _EdgeProps(Model):
    op: OpRef
    name: EdgeName | None = None
    at: Steps = StepRule(word="all")
    # Steps between a value and its use: the source's value of step t - delay (0: a sweep within one step);
    # from `input`, the frame shown at t - delay. Default: 1, and 0 from `input` (the frame shown now).
    delay: NonNegativeInt | None = None
    share: Share | None = None
    norm: NormSetting | None = None
    tie: EdgeName | None = None
    activation: Activation | None = None  # default: defaults.activation; none (with norm: none): a linear edge
    modulating: bool = False  # scales the target's drive by 1 + g(M) instead of adding to it
    into: str | None = None  # a named input of the target's cell instead of its drive (the rgc's out_gate)


class EdgeSpec(_EdgeProps):
    """One transition, in the edge-list notation."""

    from_: str = Field(alias="from")
    to: str

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict:
        out = handler(self)
        return {k: out.pop(k) for k in ("from", "to") if k in out} | out


class MatrixEntry(_EdgeProps):
    """One entry of a transition matrix: an op, or an op with edge settings (`{op: up, delay: 2}`)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict) and "op" in value:
            return value
        return {"op": value}

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> Any:
        out = handler(self)
        return out["op"] if set(out) == {"op"} else out


Matrix = dict[str, dict[str, MatrixEntry]]


class Phase(Model):
    """One transition matrix of a time-varying schedule, on at the steps `at`."""

    at: Steps
    transitions: Matrix


class InputRule(Model):
    """When an area receives the pre-net's output: `once` (step 0), `every` step, or listed steps."""

    at: Steps = StepRule(word="once")
    op: OpRef = OpRef(name="identity")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict) and ("at" in value or "op" in value):
            return value
        return {"at": value}

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> Any:
        out = handler(self)
        return out.get("at", "once") if "op" not in out else out


# --- the rest ---------------------------------------------------------------------------------


class Stimulus(Model):
    """What the network sees at each step (docs/semantics.md, 'Stimuli'): the frames of a sequence
    `x[:, k]`, frame k at step k and past the last frame held or cycled; or one image shown at the steps
    `show` selects and, at the others, a blank (a constant: 0, grey in normalised input, by default) or a
    mask (`model(x, mask=m)`): backward masking."""

    frames: Literal["hold", "cycle"] | None = None
    show: Steps | None = None
    then: Literal["blank", "mask"] = "blank"
    blank: float = 0.0

    @model_validator(mode="after")
    def _one_kind(self) -> Stimulus:
        if (self.frames is None) == (self.show is None):
            raise ValueError("give one of frames (hold or cycle: a sequence, frame k at step k) and show (the "
                             "steps at which the image is shown)")
        if self.frames is not None and {"then", "blank"} & self.model_fields_set:
            raise ValueError("then and blank go with show (an image shown at some steps), not with frames")
        return self

    def frame(self, step: int, frames: int = 1) -> int | str:
        """What is shown at `step`: a frame's index, "blank" or "mask" (`frames`: the sequence's length)."""
        if self.frames == "hold":
            return min(step, frames - 1)
        if self.frames == "cycle":
            return step % frames
        return 0 if step in self.show.resolve(step, first=0) else self.then


class InputSpec(Model):
    channels: PositiveInt
    size: HeightWidth
    stimulus: Stimulus | None = None  # default: one image, the same at every step


class CellRef(OpRef):
    """An area's cell: a bare name (`gru`) or one name with its parameters (`{leaky: {tau: 4}}`)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict:
        return {**super().__get_pydantic_json_schema__(core_schema, handler),
                "description": f"a cell name ({', '.join(known_cells())}), or {{name: {{param: value}}}}"}


class AreaSpec(Model):
    channels: PositiveInt
    size: HeightWidth
    cell: CellRef = CellRef(name="sum")  # what the area makes of its drive (docs/semantics.md, "Cells")
    modulation: Literal["identity", "tanh"] = "identity"  # g in the gain 1 + g(M) of modulating edges


class Defaults(Model):
    share: Share = "time"
    norm: NormSetting = BATCH_PER_STEP
    beyond: Literal["error", "reuse_last"] = "error"
    horizon: PositiveInt | None = None  # per-step weights and norms exist up to here; default: steps
    activation: Activation = "relu"
    # Residual ops start as their shortcut, so that signal does not grow step after step: the last norm
    # of the branch (basic, bottleneck, cornet; Goyal et al. 2017) or its last conv (residual) starts at 0.
    zero_init_residual: bool = True


class Head(Model):
    classes: PositiveInt
    pool: Literal["avg", "max", "none"] = "avg"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    # A norm and the activation before pooling (a pre-activation network's final BN-ReLU).
    # Default: per_step where an edge into the readout area is a pre-activation op, else none.
    norm: NormSetting | None = None
    bias: bool = True  # the linear layer's bias (the published BLT trains without one)


class Readout(Model):
    # One area, or several: each normalised (where the head has a norm) and pooled, then concatenated.
    area: ReadoutArea
    step: ReadoutStep | None = None  # default: the last step
    head: Head
    # How `model(x)` makes one prediction of the logits at several readout steps: their mean, the last step's,
    # a learned weighted mean (softmax of one weight a step), or per sample the most confident step's.
    decoder: Literal["mean", "last", "weighted", "confident"] = "mean"
    # What training minimises: the loss of that prediction, or a weighted mean of the loss at each readout
    # step: the last only, all alike, growing with the step (1, 2, ..., n), or one weight a step; or the
    # sum of the losses at the readout steps (the published BLT's objective: a learning rate means the same).
    loss: Literal["prediction", "last", "uniform", "increasing", "sum"] | list[NonNegativeFloat] = "prediction"

    @property
    def areas(self) -> tuple[str, ...]:
        return (self.area,) if isinstance(self.area, str) else self.area

    @property
    def written(self) -> str | list[str]:
        """The area, or the list of areas, as the spec writes it (for JSON)."""
        return self.area if isinstance(self.area, str) else list(self.area)

    @property
    def label(self) -> str:
        """`IT`, or `V4+IT` where the readout reads several areas."""
        return "+".join(self.areas)

    def area_loc(self, i: int) -> tuple:
        """Where the spec names its i-th readout area."""
        return ("readout", "area") if isinstance(self.area, str) else ("readout", "area", i)


class Spec(Model):
    """A whole network: areas, transitions, schedule and readout."""

    cortexgraph: Annotated[int, PlainValidator(_parse_version), WithJsonSchema({"const": VERSION})]
    name: Annotated[str, PlainValidator(_check_spec_name),
                    WithJsonSchema({"type": "string", "pattern": SPEC_NAME.pattern})]
    description: str | None = None
    input: InputSpec
    prenet: list[OpRef] = Field(default_factory=list)
    areas: dict[AreaName, AreaSpec] = Field(min_length=1)
    inputs: dict[str, InputRule] = Field(min_length=1)
    steps: PositiveInt
    defaults: Defaults = Defaults()
    edges: list[EdgeSpec] = Field(default_factory=list)
    transitions: Matrix = Field(default_factory=dict)
    schedule: list[Phase] = Field(default_factory=list)
    readout: Readout
    # Before its first update an area is silent: `absent` (a silent source contributes nothing), `zeros`
    # (CORnet-R/RT's convention: every area holds 0, and every cell other than `sum` runs from step 0), or
    # `computed` (PyTorchTNN's: as zeros, and an edge whose source is silent runs on its zeros, f(0)).
    silence: Literal["absent", "zeros", "computed"] = "absent"
    checkpoint: bool = False  # activation checkpointing across steps: less memory in training, more time

    _source: SourceMap | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # Where a spec was read from is not part of what it says.
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    @property
    def source(self) -> SourceMap:
        return self._source or SourceMap(f"<{self.name}>")

    @property
    def readout_steps(self) -> tuple[int, ...]:
        step = self.readout.step
        if step is None:
            return (self.steps,)
        return step if isinstance(step, tuple) else (step,)

    @property
    def loss_weights(self) -> tuple[float, ...] | None:
        """The weight of each readout step's loss in training (they sum to 1; under `sum` each is 1), or None:
        the loss of the prediction `model(x)` makes (`readout.loss: prediction`, the default)."""
        loss, n = self.readout.loss, len(self.readout_steps)
        if loss == "prediction":
            return None
        if loss == "sum":
            return (1.0,) * n
        raw = loss if isinstance(loss, list) else {"last": [0] * (n - 1) + [1], "uniform": [1] * n,
                                                    "increasing": list(range(1, n + 1))}[loss]
        top = max(raw) or 1  # scaled first: weights near the largest float would sum to infinity
        scaled = [w / top for w in raw]
        return tuple(w / sum(scaled) for w in scaled)

    def to_dict(self) -> dict:
        """The canonical dict: what a YAML or JSON dump holds; parses back to an equal spec."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)


# --- from data to a Spec, with located errors -----------------------------------------------------


def parse_spec(data: Any, source: SourceMap | None = None) -> Spec:
    """Validate plain data against the schema; every error is located in `source`."""
    source = source or SourceMap("<spec>")
    if not isinstance(data, dict):
        raise SpecError([source.place(Problem((), f"a spec is a mapping of fields, not {_kind(data)}",
                                              "a spec starts with 'cortexgraph: 1'"))])
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(located_errors(exc, source)) from None
    spec._source = source
    return spec


def load_spec(spec: Any, *, limits: TextLimits = TextLimits()) -> Spec:
    """A Spec from a path, a bundled spec name, YAML/JSON text, a dict or a Spec."""
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, dict):
        return parse_spec(spec)
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec):
        from .bundled import resolve

        path = resolve(str(spec))
        if Path(path).suffix in CHECKPOINT_SUFFIXES:  # a checkpoint, as `build` takes: the spec inside
            return _spec_in_checkpoint(Path(path))
        data, source = read_file(path, limits=limits)
        return parse_spec(data, source)
    if isinstance(spec, str):
        data, source = parse_text(spec, "<text>", limits=limits)
        return parse_spec(data, source)
    raise TypeError(f"load_spec takes a path, a bundled name, text, a dict or a Spec, not {type(spec).__name__}")


def _spec_in_checkpoint(path: Path) -> Spec:
    from .checkpoint import CheckpointError, read_checkpoint

    try:
        payload = read_checkpoint(path)
    except CheckpointError as exc:
        raise SpecError([Problem((), str(exc).removeprefix(f"{path} "), file=str(path))]) from None
    return parse_spec(payload["spec"], SourceMap(f"{path} (its spec)"))


_FIELD_HINTS = {
    "cortexgraph": "a spec starts with 'cortexgraph: 1'",
    "steps": "how many steps to unroll, e.g. 'steps: 8'",
    "readout": "e.g. readout: {area: IT, head: {classes: 10}}",
    "inputs": "which areas receive the pre-net's output, e.g. inputs: {V1: once}",
}


def located_errors(exc: ValidationError, source: SourceMap, prefix: Loc = (),
                   model: type[BaseModel] | None = None) -> list[Problem]:
    """pydantic's errors as located problems; `prefix` is where `model` sits in the spec."""
    problems = [_located(err, source, prefix, model or Spec) for err in exc.errors()]
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
        message = f"expected a whole number, got {_kind(value)}"
    elif kind == "float_type":
        message = f"expected a number, got {_kind(value)}"
    elif kind == "string_type":
        message = f"expected text, got {_kind(value)}"
    elif kind == "bool_type":
        message = f"expected true or false, got {_kind(value)}"
    elif kind in ("dict_type", "model_type"):
        message = f"expected a mapping (key: value), got {_kind(value)}"
    elif kind in ("list_type", "tuple_type"):
        message = f"expected a list, got {_kind(value)}"
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


def _kind(value: Any) -> str:
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
