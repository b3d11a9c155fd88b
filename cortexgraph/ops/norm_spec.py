"""How a norm is written in a spec, without importing torch: its kind, and one per step or shared.

`per_step`, `shared` and `none` are batch norms as they always were (one per step: time-specific batch
normalisation); a kind alone (`group`, `layer`, `instance`, `batch`) is that norm, one per step; a
mapping says everything: `{kind: group, groups: 32, time: shared, eps: 1e-5}`. A layer norm normalises
over channels, height and width with an element-wise affine, as `torch.nn.LayerNorm([C, H, W])`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from ..errors import did_you_mean

KINDS = ("batch", "group", "layer", "instance")
SPATIAL_FREE = ("batch", "group", "instance")  # kinds whose size does not depend on the height and width


class NormSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    kind: Literal["batch", "group", "layer", "instance", "none"] = "batch"
    time: Literal["per_step", "shared"] = "per_step"  # one norm per step (time-specific), or one for all
    groups: PositiveInt = 32  # a group norm's
    eps: PositiveFloat = 1e-5
    # A batch norm's running statistics: new = (1 - momentum) old + momentum batch, torch's convention
    # (Keras's momentum 0.99 is 0.01 here).
    momentum: Annotated[float, Field(gt=0, le=1)] = 0.1

    @model_validator(mode="after")
    def _momentum_of_a_batch_norm(self) -> NormSpec:
        if self.momentum != 0.1 and self.kind != "batch":
            raise ValueError(f"a {self.kind} norm keeps no running statistics: momentum applies to batch norms")
        return self

    @property
    def policy(self) -> str:
        """per_step, shared or none: how many norms, whatever their kind."""
        return "none" if self.kind == "none" else self.time

    @property
    def keeps_statistics(self) -> bool:
        """Whether it keeps running statistics (a batch norm): 2 buffers a channel."""
        return self.kind == "batch"


BATCH_PER_STEP = NormSpec()
NO_NORM = NormSpec(kind="none")
_WORDS = {"per_step": BATCH_PER_STEP, "shared": NormSpec(time="shared"), "none": NO_NORM,
          **{kind: NormSpec(kind=kind) for kind in KINDS}}


def parse_norm(value: Any) -> NormSpec:
    if isinstance(value, NormSpec):
        return value
    if isinstance(value, str) and value in _WORDS:
        return _WORDS[value]
    if isinstance(value, dict):
        try:
            return NormSpec.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(map(str, err["loc"]))
            if err["type"] == "literal_error":
                expected = err["ctx"]["expected"]
                hint = did_you_mean(err["input"], re.findall(r"'([^']*)'", expected))
                raise ValueError(f"norm {where}: {err['input']!r} is not allowed; expected {expected}"
                                 + (f" ({hint})" if hint else "")) from None
            if err["type"] == "extra_forbidden":
                raise ValueError(f"norm: unknown field {where!r}; a norm has kind, time, groups, eps and "
                                 "momentum") from None
            raise ValueError(f"norm {where}: {err['msg'][0].lower()}{err['msg'][1:]}" if where
                             else "norm: " + err["msg"].removeprefix("Value error, ")) from None
    if isinstance(value, str):
        hint = did_you_mean(value, list(_WORDS))
        raise ValueError(f"{value!r} is not a norm; expected per_step, shared or none (batch norms), a kind (batch, "
                         "group, layer, instance: one per step) or a mapping such as {kind: group, groups: 32}"
                         + (f" ({hint})" if hint else ""))
    raise ValueError("a norm is per_step, shared or none (batch norms), a kind (batch, group, layer, instance: "
                     "one per step), or a mapping such as {kind: group, groups: 32, time: shared}")


def stem_norm(norm: bool | NormSpec) -> NormSpec:
    """A pre-net layer's norm: `true` a batch norm, `false` none, else the kind given (one: it runs once)."""
    if isinstance(norm, bool):
        return _WORDS["shared"] if norm else NO_NORM
    return norm.model_copy(update={"time": "shared"})


def dump_norm(norm: NormSpec) -> Any:
    for word, meant in _WORDS.items():
        if norm == meant:
            return word
    return norm.model_dump(exclude_defaults=True) | {"kind": norm.kind}


NORM_SCHEMA = {
    "description": "per_step, shared, none, batch, group, layer, instance, or {kind, time, groups, eps, momentum}",
    "anyOf": [{"enum": list(_WORDS)},
              {"type": "object", "additionalProperties": False, "properties": {
                  "kind": {"enum": [*KINDS, "none"]}, "time": {"enum": ["per_step", "shared"]},
                  "groups": {"type": "integer", "minimum": 1}, "eps": {"type": "number", "exclusiveMinimum": 0},
                  "momentum": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}}}],
}

# A field that takes any of the notations above.
NormSetting = Annotated[NormSpec, PlainValidator(parse_norm), PlainSerializer(dump_norm), WithJsonSchema(NORM_SCHEMA)]
