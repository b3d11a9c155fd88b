"""The spec language: one pydantic schema for YAML and JSON specs.

The schema is declared once here; the JSON Schema (`cortexgraph schema`) comes
from it. Flexible notations (steps as `all`, a list or a range; sizes; sharing)
are parsed by small validators with messages of their own (`notations.py`), so
a user sees one clear error per mistake instead of pydantic's list of union
members; pydantic's errors become located problems in `located.py`.
Cross-references (area names, ties, shapes) are the analysis's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    model_serializer,
    model_validator,
)

from .errors import Problem, SpecError, known_list
from .located import located_errors
from .notations import (
    STEPS_SCHEMA,
    AreaName,
    EdgeName,
    HeightWidth,
    ReadoutArea,
    ReadoutStep,
    Share,
    SpecName,
    Steps,
    Version,
    kind_of,
)
from .ops.cell_registry import known_cells
from .ops.norm_spec import BATCH_PER_STEP, NormSetting
from .ops.op_params import Activation
from .source import CHECKPOINT_SUFFIXES, SourceMap, TextLimits, parse_text, read_file
from .step_rules import StepRule


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


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
                raise ValueError(f"an op name is text, not {kind_of(name)}")
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise ValueError(f"the parameters of op {name!r} are a mapping such as {{kernel: 3}}, "
                                 f"not {kind_of(params)}")
            return {"name": name, "params": params}
        if isinstance(value, dict):
            raise ValueError("an op is one name with its parameters, such as {down: {kernel: 3}}; "
                             f"this mapping has {len(value)} keys ({known_list(map(str, value), 4)})")
        raise ValueError("expected an op: a name such as 'residual', or {name: {param: value}}; "
                         f"got {kind_of(value)}")

    @model_serializer
    def _dump(self) -> Any:
        return {self.name: dict(self.params)} if self.params else self.name

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict:
        return {"description": "an op name, or {name: {param: value}}", "anyOf": OP_FORMS}


# What an op may be written as: a name, or one name with its parameters.
OP_FORMS = [{"type": "string"}, {"type": "object", "minProperties": 1, "maxProperties": 1,
                                 "additionalProperties": {"type": ["object", "null"]}}]


def _or_shorthand(shorthand: list[dict], description: str, core_schema: Any, handler: Any) -> dict:
    """The JSON Schema of a model that may also be written as a shorthand (`V1: once`, `V2: down`)."""
    long_form = dict(handler.resolve_ref_schema(handler(core_schema)))
    return {"description": description, "anyOf": [*shorthand, long_form]}


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

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict:
        return _or_shorthand(OP_FORMS, "an op, or {op, ...} with the edge's settings", core_schema, handler)


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

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict:
        return _or_shorthand(STEPS_SCHEMA["anyOf"], "the steps it receives the input at, or {at, op}",
                             core_schema, handler)


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


class Activity(Model):
    """A cost on areas' activity added to the training loss: `weight` times the mean, over the areas named
    (every area by default) and every step each holds a value, of the mean absolute value (`l1`) or the mean
    square (`l2`) of its activity. Keeps recurrent dynamics bounded and sparse (DynVision's energy loss)."""
    weight: PositiveFloat
    norm: Literal["l1", "l2"] = "l2"
    areas: list[AreaName] | None = None


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
    activity: Activity | None = None  # a cost on the areas' activity, added to that loss in training

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

    cortexgraph: Version
    name: SpecName
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
    # How long a step lasts, in milliseconds: latencies (arrival, peak responses) are then said in ms as well.
    dt_ms: PositiveFloat | None = None

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
        raise SpecError([source.place(Problem((), f"a spec is a mapping of fields, not {kind_of(data)}",
                                              "a spec starts with 'cortexgraph: 1'"))])
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(located_errors(exc, source, (), Spec)) from None
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
