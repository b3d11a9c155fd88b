"""The settings of a training run, declared once: `TrainConfig` is the Python API, `cortexgraph train`'s
flags are made from it (`cortexgraph.flags`), and each checkpoint records it (`settings`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from ..overrides import Overrides
from .preprocess import normalize_text, parse_normalize

# The settings of a run's data: `evaluate` and `features` take them too, defaulting to a checkpoint's
# (and --download, which is never a checkpoint's).
DATA_FLAGS = ("data", "data_dir", "augment", "normalize", "data_keys", "test_split")


class TrainConfig(Overrides):
    """A training run; the spec's overrides (steps, classes, share, norm, size, activation checkpointing)
    come from `Overrides`. Invalid settings raise ValueError with one line that says which."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=False, validate_assignment=False)

    spec: str = Field(description="a spec file or a bundled spec name", json_schema_extra={"positional": True})
    data: str = Field("synthetic", description="digits, digits-moving, synthetic, mnist, fashion-mnist, cifar10, "
                      "cifar100, svhn, stl10, imagenet (a folder at --data-dir), imagefolder:DIR or arrays:FILE "
                      "(default: synthetic)")
    data_dir: str = Field("data", description="where a named data set is, in torchvision's layout (default: "
                                              "%(default)s)")
    download: bool = Field(False, description="download the named data set into --data-dir if it is not there "
                                              "(nothing is downloaded otherwise)")
    augment: Literal["none", "flip", "crop", "imagenet"] | None = Field(
        None, description="training images: none, flip (random horizontal flips), crop (random crops of the image "
        "padded by an eighth, and flips) or imagenet (random resized crops, and flips) (default: crop for "
        "cifar10, cifar100 and stl10, imagenet for imagenet, else none)")
    normalize: str | None = Field(
        None, description="none, imagenet, computed (each channel's mean and deviation over the training images) "
        "or MEAN,STD (numbers, or one per channel separated by '/') (default: imagenet for imagenet, none for "
        "synthetic, else computed)")
    data_keys: str | None = Field(None, description="arrays:FILE's images and labels, IMAGES,LABELS (default: the "
                                                    "first of x, images, data, ... and of y, labels, targets, ...)")
    test_split: float = Field(0.2, description="the fraction of arrays:FILE's images held out to test on, where it "
                                               "has no _test arrays (default: %(default)s)")
    out: str | None = Field(None, description="output folder (default: runs/<spec name>)")
    epochs: int = Field(10, description="default: %(default)s")
    batch_size: int = Field(128, description="default: %(default)s")
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="default: %(default)s")
    lr: float | None = Field(None, description="learning rate (default: 0.1 for sgd, 0.001 for adamw)")
    momentum: float = Field(0.9, description="SGD's momentum (default: %(default)s)")
    weight_decay: float | None = Field(None, description="default: 5e-4 for sgd, 0.05 for adamw")
    schedule: Literal["cosine", "step", "constant"] = Field(
        "cosine", description="learning-rate schedule over the epochs (default: %(default)s)")
    step_size: int = Field(30, description="epochs between decays (step schedule; default: %(default)s)")
    gamma: float = Field(0.1, description="decay factor (step schedule; default: %(default)s)")
    label_smoothing: float = Field(0.0, description="default: %(default)s")
    amp: bool | None = Field(None, description="bf16 autocast (default: on for CUDA)")
    channels_last: bool | None = Field(None, description="channels-last memory format (default: on for CUDA)")
    compile: Literal["default", "reduce-overhead", "max-autotune"] | None = Field(
        None, description="compile the training step with torch.compile in MODE: default (without a MODE), "
        "reduce-overhead (replays it as CUDA graphs on a GPU) or max-autotune; full batches run compiled, a "
        "last smaller batch and the evaluation eagerly (default: eager)",
        json_schema_extra={"const": "default", "metavar": "MODE"})
    device: str = Field("auto", description="auto (a GPU where there is one), cpu, cuda or cuda:N "
                                            "(default: %(default)s)")
    workers: int = Field(0, description="data loader processes (default: %(default)s)")
    seed: int = Field(0, description="default: %(default)s")
    resume: bool = Field(False, description="continue the run in OUT from OUT/checkpoint.pt, with the settings "
                                            "it keeps: no other flag is needed; one given may change how the run "
                                            "goes on (--device, --workers, ...) or extend --epochs, and is refused "
                                            "where it would change what the run trains")
    overwrite: bool = Field(False, description="replace the run in OUT (never replaced otherwise)")
    clip_grad: float | None = Field(None, description="clip the gradients' total norm",
                                    json_schema_extra={"metavar": "NORM"})
    on_nonfinite: Literal["stop", "skip"] = Field(
        "stop", description="on a NaN or infinite loss or gradient: stop and say where it first appeared "
                            "(default), or skip that optimizer step")
    anytime: bool = Field(True, description="skip the test accuracy at every readout step",
                          json_schema_extra={"flag": "no-anytime", "negate": True})
    progress: bool = Field(True, description="no progress bar or epoch lines (warnings and the result are still "
                                             "printed)", json_schema_extra={"flag": "quiet", "negate": True})
    allow_imports: bool = Field(False, description="let ops named package.module:op import their module (specs "
                                                   "run no code otherwise)")
    limit_batches: int | None = Field(None, description="at most this many training batches per epoch (the test "
                                                      "split is evaluated whole)")
    log: str | None = Field(None, description="also log to tensorboard (OUT/tensorboard), wandb (OUT/wandb, offline "
                                              "unless WANDB_MODE says) or both (tensorboard,wandb): each epoch's "
                                              "numbers, each area's activity per step, the plots",
                            json_schema_extra={"metavar": "LOGS"})

    @field_validator("log")
    @classmethod
    def _logs(cls, value: str | None) -> str | None:
        from .logs import parse_logs

        return ",".join(parse_logs(value)) or None

    @field_validator("normalize", mode="before")
    @classmethod
    def _normalize_text(cls, value: Any) -> Any:
        """`[mean, std]` from Python is the setting `MEAN,STD` (so checkpoints keep it as the flag gives it)."""
        text = normalize_text(value)
        if text is not None:
            parse_normalize(text)  # refused now, in one line, not when the data are read
        return text

    def __init__(self, **settings: Any) -> None:
        try:
            super().__init__(**settings)
        except ValidationError as exc:
            raise ValueError(_one_line(exc)) from None

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        checks = [(self.epochs >= 1, "epochs must be at least 1"),
                  (self.batch_size >= 1, "batch size must be at least 1"),
                  (self.lr is None or self.lr > 0, "learning rate must be positive"),
                  (0 <= self.label_smoothing < 1, "label smoothing is in [0, 1)"),
                  (self.clip_grad is None or self.clip_grad > 0, "gradient clipping needs a positive norm"),
                  (self.workers >= 0, "workers must be >= 0"),
                  (self.step_size >= 1, "the step schedule's step size is at least 1 epoch"),
                  (self.gamma > 0, "the step schedule's gamma must be positive"),
                  (self.momentum >= 0, "momentum must be >= 0"),
                  (self.weight_decay is None or self.weight_decay >= 0, "weight decay must be >= 0"),
                  (0 <= self.seed < 2**32, "the seed must be in [0, 2**32)"),
                  (self.limit_batches is None or self.limit_batches >= 1,
                   "limit_batches must be at least 1 (or None for every batch)"),
                  (self.out is None or self.out.strip() != "", "the output folder is an empty name"),
                  (0 < self.test_split < 1, "the test split is a fraction in (0, 1)"),
                  (not (self.resume and self.overwrite), "resume (continue the run) or overwrite (replace "
                                                         "it), not both")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.lr is None:
            self.lr = 0.1 if self.optimizer == "sgd" else 1e-3
            self.model_fields_set.discard("lr")  # filled in, not given: a resumed run takes its checkpoint's
        if self.weight_decay is None:
            self.weight_decay = 5e-4 if self.optimizer == "sgd" else 0.05
            self.model_fields_set.discard("weight_decay")
        return self

    def overrides(self) -> Overrides:
        """The spec's overrides this run asks for."""
        return Overrides(**{name: getattr(self, name) for name in Overrides.model_fields})

    def settings(self) -> dict[str, Any]:
        """Every setting by its flag's name (`activation_checkpointing`, not `checkpoint`), as checkpoints keep them."""
        return self.model_dump(by_alias=True)


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])
    where = ".".join(map(str, err["loc"]))
    return f"{where}: {err['msg'][0].lower()}{err['msg'][1:]}" if where else err["msg"]
