"""A sweep file: the spec(s) and training settings a study starts from, what varies, and how it is searched.

```yaml
cortexgraph-sweep: 1
name: shared-or-not                  # default: the file's name
spec: demo/frnn3-digits              # a bundled name, or a path relative to this file
train: {data: digits, epochs: 2}     # TrainConfig's settings, the same for every trial
vary:
  defaults.share: [time, none]       # a spec field by its path
  spec: [demo/frnn3-digits, liao2016/srn1-cifar]   # or whole specs
  lr: {log: [1.0e-4, 1.0e-2]}        # a training setting: choices, or a range (log, linear or int)
  seed: [0, 1, 2]
sampler: grid                        # grid, random or tpe (default: grid when every field varies by choices)
trials: 12                           # the budget (default: every grid point; needed otherwise)
timeout: 3600                        # seconds, optional
objective: accuracy                  # accuracy, accuracy@STEP, parameters or flops; several give a Pareto front
pruner: median                       # median or none (default: median for random and tpe on one accuracy)
```

A pruner stops a trial after an epoch whose accuracy is below the median of earlier trials' at that epoch
(Optuna's MedianPruner, which prunes nothing until five trials have finished); a grid of seeds is a
comparison, and so is not pruned unless the file says so.

Errors are located in the file as a spec's are: `file:line:col: path: what is wrong (hint)`.
"""

from __future__ import annotations

import builtins
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from ..errors import Problem, SpecError
from ..located import located_errors
from ..source import SourceMap, read_file

OBJECTIVE = re.compile(r"^(accuracy(@\d+)?|parameters|flops)$")


class Range(BaseModel):
    """A number drawn from an interval: `{log: [a, b]}`, `{linear: [a, b]}` or `{int: [a, b]}`."""
    model_config = ConfigDict(extra="forbid")
    log: tuple[float, float] | None = None
    linear: tuple[float, float] | None = None
    int: tuple[builtins.int, builtins.int] | None = None  # (`int` is this field's name within the class)

    @model_validator(mode="after")
    def _one(self) -> Range:
        given = [name for name in ("log", "linear", "int") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a range is one of {log: [low, high]}, {linear: [low, high]} or {int: [low, high]}")
        low, high = getattr(self, given[0])
        if not low < high or (given[0] == "log" and low <= 0):
            raise ValueError(f"{given[0]} range [{low}, {high}] must rise"
                             + (" from above 0" if given[0] == "log" else ""))
        return self

    @property
    def kind(self) -> str:
        return next(name for name in ("log", "linear", "int") if getattr(self, name) is not None)


Choice = str | int | float | bool | None
# A list is choices, a mapping a range: told apart by their kind, so an error names the one meant.
Varied = Annotated[Annotated[list[Choice], Tag("choices")] | Annotated[Range, Tag("range")],
                   Discriminator(lambda v: "choices" if isinstance(v, list) else "range")]


class SweepFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    version: Literal[1] = Field(alias="cortexgraph-sweep")
    name: str | None = None
    spec: str | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    vary: dict[str, Varied] = Field(default_factory=dict)
    sampler: Literal["grid", "random", "tpe"] | None = None
    trials: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0)
    objective: str | list[str] = "accuracy"
    pruner: Literal["median", "none"] | None = None

    @field_validator("vary")
    @classmethod
    def _choices(cls, vary: dict) -> dict:
        for key, values in vary.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"{key} varies over no values")
        return vary

    @field_validator("objective")
    @classmethod
    def _objectives(cls, objective: str | list[str]) -> str | list[str]:
        for name in [objective] if isinstance(objective, str) else objective:
            if not OBJECTIVE.match(name):
                raise ValueError(f"objective {name!r} is accuracy, accuracy@STEP, parameters or flops")
        return objective

    @model_validator(mode="after")
    def _complete(self) -> SweepFile:
        if self.spec is None and "spec" not in self.vary:
            raise ValueError("a sweep needs a spec to start from: spec: NAME, or vary: {spec: [A, B]}")
        if self.chosen_sampler != "grid" and self.trials is None:
            raise ValueError(f"a {self.chosen_sampler} sweep needs a budget: trials: N")
        if self.chosen_sampler == "grid" and any(isinstance(v, Range) for v in self.vary.values()):
            raise ValueError("a grid sweep varies by choices only; give lists, or sampler: random or tpe")
        if self.pruner == "median" and (len(self.objectives) > 1 or not self.objectives[0].startswith("accuracy")):
            raise ValueError("a pruner judges a trial by its accuracy after each epoch; "
                             + ("a study of several objectives (a Pareto front) cannot be pruned"
                                if len(self.objectives) > 1 else f"{self.objectives[0]} does not change as it trains")
                             + ": pruner: none")
        return self

    @property
    def chosen_pruner(self) -> str:
        if self.pruner is not None:
            return self.pruner
        one_accuracy = len(self.objectives) == 1 and self.objectives[0].startswith("accuracy")
        return "median" if self.chosen_sampler != "grid" and one_accuracy else "none"

    @property
    def chosen_sampler(self) -> str:
        if self.sampler is not None:
            return self.sampler
        return "grid" if all(isinstance(v, list) for v in self.vary.values()) else "tpe"

    @property
    def objectives(self) -> list[str]:
        return [self.objective] if isinstance(self.objective, str) else list(self.objective)


class Sweep:
    """A validated sweep file, with where it was read from (specs are found relative to it)."""

    def __init__(self, file: SweepFile, path: Path, source: SourceMap):
        self.file, self.path, self.source = file, path, source
        self.name = file.name or path.stem

    def spec_path(self, name: str) -> str:
        """A spec named in the file: a path relative to the file where one exists, else a bundled name."""
        near = self.path.parent / name
        return str(near) if near.is_file() else name


SETTINGS_NOT_VARIED = ("spec", "out", "resume", "overwrite")  # the sweep's to choose for each trial


def sweep_schema() -> dict:
    """The JSON Schema of sweep files (`cortexgraph schema --sweep`), for editors: the file's fields, with
    `train` holding TrainConfig's settings. load_sweep checks more (a varied field makes a valid spec)."""
    from ..train.config import TrainConfig

    schema = SweepFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cortexgraph sweep"
    settings = TrainConfig.model_json_schema()
    for name in SETTINGS_NOT_VARIED:
        settings["properties"].pop(name, None)
    schema["$defs"].update(settings.pop("$defs", {}))
    schema["properties"]["train"] = {"type": "object", "properties": settings["properties"],
                                     "additionalProperties": False,
                                     "description": "training settings, the same for every trial"}
    return schema


def load_sweep(path: str | Path) -> Sweep:
    """A sweep file, validated; every problem located in it (`SpecError`)."""
    from ..train.config import TrainConfig

    path = Path(path)
    data, source = read_file(path)
    if not isinstance(data, dict):
        raise SpecError([source.place(Problem((), "a sweep file is a mapping of fields",
                                              "it starts with 'cortexgraph-sweep: 1'"))])
    try:
        file = SweepFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(located_errors(exc, source, (), SweepFile)) from None
    problems = []
    settings = set(TrainConfig.model_fields) - set(SETTINGS_NOT_VARIED)
    for key in file.train:
        if key not in settings:
            problems.append(Problem(("train", key), f"{key} is not a training setting",
                                    "one of " + ", ".join(sorted(settings))))
    for key in file.vary:
        if key in SETTINGS_NOT_VARIED[1:]:  # (`spec` varies whole specs)
            problems.append(Problem(("vary", key), f"{key} is the sweep's to choose, not a setting to vary"))
    try:
        TrainConfig(spec="-", **{k: v for k, v in file.train.items() if k in settings})
    except ValueError as exc:
        problems.append(Problem(("train",), str(exc)))
    sweep = Sweep(file, path, source)
    problems += _spec_fields(sweep, settings)
    if problems:
        raise SpecError([source.place(p) for p in problems])
    return sweep


def _spec_fields(sweep: Sweep, settings: set[str]) -> list[Problem]:
    """Each spec field the sweep varies, set to each of its values (a range's ends) in each spec it starts
    from, must make a valid spec: found now, before any trial runs."""
    from ..spec import load_spec, parse_spec

    specs = sweep.file.vary.get("spec", [sweep.file.spec])
    problems = []
    for key, values in sweep.file.vary.items():
        if key == "spec" or key in settings or key == "seed":
            continue
        tried = list(values) if isinstance(values, list) else list(getattr(values, values.kind))
        for name in specs:
            try:
                doc = load_spec(sweep.spec_path(str(name))).to_dict()
            except SpecError as exc:
                return [Problem(("vary", "spec") if "spec" in sweep.file.vary else ("spec",),
                                f"{name}: {exc.errors[0].message if exc.errors else exc}")]
            for value in tried:
                try:
                    set_field(doc, key, value)
                    parse_spec(doc)
                except (ValueError, SpecError) as exc:
                    message = exc.errors[0].message if isinstance(exc, SpecError) and exc.errors else str(exc)
                    problems.append(Problem(("vary", key), f"{value!r} does not make a valid spec of {name} "
                                                           f"({message})"))
                    break
    return problems


def set_field(doc: dict, path: str, value: Any) -> None:
    """The spec field at `path` (dots between keys) set to `value`; the keys before it must exist."""
    keys = path.split(".")
    node = doc
    for depth, key in enumerate(keys[:-1]):
        if not isinstance(node, dict) or key not in node:
            node = node.setdefault(key, {}) if isinstance(node, dict) and depth == 0 else None
            if node is None:
                raise ValueError(f"the spec has no field {'.'.join(keys[:depth + 1])}")
            continue
        node = node[key]
    if not isinstance(node, dict):
        raise ValueError(f"{'.'.join(keys[:-1])} is not a mapping of fields")
    node[keys[-1]] = value
