"""What a run may change in a spec without editing it: declared once, read everywhere.

`Overrides` is the one list of the fields `compile` and `build` take as keywords,
the flags `cortexgraph compile`, `draw` and `train` offer, and the settings a
training checkpoint records. Applying them gives a new Spec, validated again
with the spec's own source map, so a bad value is located as if written there.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from .errors import Problem, SpecError
from .ops.norm_spec import KINDS
from .spec import Spec, parse_spec


class Overrides(BaseModel):
    """Fields of a spec replaced for one run; None keeps the spec's own."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    steps: int | None = Field(None, description="override the spec's steps")
    classes: int | None = Field(None, description="override the readout's classes")
    share: str | None = Field(None, description="override defaults.share (time or none)")
    norm: str | None = Field(None, description="override defaults.norm: per_step, shared or none (batch norms), "
                             "or a kind (batch, group, layer, instance)", json_schema_extra={
        "choices": ["per_step", "shared", "none", *KINDS]})
    size: int | None = Field(None, description="rescale the input and every area (e.g. 32 for a 224-pixel spec)")
    # Called `activation_checkpointing` where `checkpoint` would mean a file (the train command, its settings).
    checkpoint: bool | None = Field(None, description="recompute each step's intermediate values in the backward "
                                    "pass (less memory)", serialization_alias="activation_checkpointing",
                                    validation_alias=AliasChoices("checkpoint", "activation_checkpointing"))

    @classmethod
    def of(cls, **given: Any) -> Overrides:
        """Overrides from keyword arguments; a wrong name or kind is a TypeError, as for any call."""
        try:
            return cls(**given)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = err["loc"][0]
            if err["type"] == "extra_forbidden":
                raise TypeError(f"{name!r} is not something a run can override; overrides are "
                                f"{', '.join(cls.model_fields)}") from None
            raise TypeError(f"override {name}={err['input']!r}: {err['msg'].lower()}") from None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields)

    def apply(self, spec: Spec) -> Spec:
        """The spec with these fields replaced; the spec itself when none is given."""
        if self.is_empty():
            return spec
        data = spec.to_dict()
        if self.checkpoint is not None:
            data["checkpoint"] = self.checkpoint
        if self.size is not None:
            _rescale(spec, data, self.size)
        if self.steps is not None:
            data["steps"] = self.steps
        if self.classes is not None:
            data["readout"]["head"]["classes"] = self.classes
        for key in ("share", "norm"):
            if getattr(self, key) is not None:
                data.setdefault("defaults", {})[key] = getattr(self, key)
        return parse_spec(data, spec.source)


def override(spec: Spec, **given: Any) -> Spec:
    """`spec` with the fields `given` replaced (the keywords of `Overrides`)."""
    return Overrides.of(**given).apply(spec)


def _rescale(spec: Spec, data: dict, size: int) -> None:
    height, width = spec.input.size
    if height != width:
        raise SpecError([spec.source.place(Problem(("input", "size"), "only square inputs can be rescaled"))])
    for name, area in spec.areas.items():
        if area.size == (1, 1):
            continue  # a pooled area (one pixel) stays one pixel: it pools whatever size it reads
        scaled = [s * size // height for s in area.size]
        if any(s * size % height or not n for s, n in zip(area.size, scaled)):
            raise SpecError([spec.source.place(Problem(
                ("areas", name, "size"), f"area {name}'s size {area.size[0]} does not scale from input {height} to "
                f"{size}", "choose a size that divides every area's evenly"))])
        data["areas"][name]["size"] = scaled[0] if scaled[0] == scaled[1] else scaled
    data["input"]["size"] = size
