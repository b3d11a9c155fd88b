"""What `--resume` may change, and what it may not.

A resumed run continues the run it resumes: the same data, batches (and so
the same number of processes: the global batch is the batch size times
them), seed, optimizer, learning-rate schedule and model (the spec, with its
overrides, is compared on its own), so that it ends where an uninterrupted
run would have ended. Settings of how the run is carried out may change (the
device and its number formats, data-loading worker processes, recomputation, compilation,
what is printed, what happens on a non-finite step), and every epoch records
the ones it ran under. Everything else is refused, in one line that names
each setting, the run's value and the flag that gives it back.

Ending exactly where an uninterrupted run would is bit for bit on the same
device settings; another device, `--amp` or `--channels-last` changes the
arithmetic, and with augmented data (cifar10, imagefolder) another number of
`--workers` changes the random crops and flips.

A resumed run takes its settings from its checkpoint (`inherit`): only the ones
given (`given_settings`: on the command line, the flags given; in Python, the
fields set) are this invocation's, so `--resume` alone continues a run, and a
fixed setting given with another value is refused as above. What this
invocation does, where and what it prints is its own (`NOT_INHERITED`).
"""

from __future__ import annotations

from typing import Any

from ..flags import flag_words
from .config import TrainConfig

# Settings of how the run is carried out: free on resume, recorded per epoch.
PER_EPOCH = ("device", "amp", "channels_last", "processes", "workers", "activation_checkpointing", "compile",
             "on_nonfinite", "log")
FREE = ("device", "amp", "channels_last", "workers", "activation_checkpointing", "compile", "on_nonfinite",
        "data_dir", "download", "out", "resume", "overwrite", "progress", "anytime", "allow_imports", "spec",
        "steps", "classes", "size", "share", "norm",  # the spec they make is compared on its own
        "log")  # (inherited: a resumed run logs where it logged)

# Settings of this invocation, never its checkpoint's: what it does (spec and out name the run, resume,
# overwrite, download), a permission a checkpoint cannot grant (allow_imports), the machine's (the device,
# and amp and channels-last, which checkpoints keep as the device chose them) and what it prints (progress).
NOT_INHERITED = ("spec", "out", "resume", "overwrite", "download", "allow_imports", "device", "amp", "channels_last",
                 "progress")

# Settings of what is trained: fixed for a run's life (epochs has its own rule below).
FIXED = ("data", "augment", "normalize", "data_keys", "test_split", "batch_size", "processes", "optimizer", "lr",
         "momentum", "weight_decay", "schedule", "step_size", "gamma", "label_smoothing", "seed", "clip_grad",
         "limit_batches")


def _relevant(name: str, settings: dict[str, Any]) -> bool:
    """Settings that the run's recipe does not use cannot change it."""
    if name == "momentum":
        return settings.get("optimizer") == "sgd"
    if name in ("step_size", "gamma"):
        return settings.get("schedule") == "step"
    if name in ("data_keys", "test_split"):
        return str(settings.get("data")).startswith("arrays:")
    return True


def changed_settings(new: dict[str, Any], old: dict[str, Any], epochs_done: int) -> list[str]:
    """How `new` (this invocation's settings) departs from the run's (`old`), in words; [] if it may resume."""
    problems = [_change(name, new.get(name), old.get(name))
                for name in FIXED if _relevant(name, old) and new.get(name) != old.get(name)]
    epochs, planned = new.get("epochs"), old.get("epochs")
    if epochs is not None and epochs < epochs_done:
        problems.append(f"--epochs {epochs} (the run has trained {epochs_done} already)")
    elif epochs != planned and old.get("schedule") == "cosine":
        problems.append(f"--epochs {epochs} (the run: --epochs {planned}; its cosine schedule spans them, so they "
                        "cannot change; the step and constant schedules can be extended)")
    return problems


def _change(name: str, new: Any, old: Any) -> str:
    if name == "processes":  # torchrun's, not a flag of ours
        return (f"{new} process{'es' if new != 1 else ''} (the run: {old}; the global batch is the batch size times "
                f"the processes: resume under torchrun --nproc_per_node {old})")
    return f"{flag_words(TrainConfig, name, new)} (the run: {flag_words(TrainConfig, name, old)})"


def per_epoch(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings an epoch ran under that a resumed run may have changed."""
    return {name: settings.get(name) for name in PER_EPOCH}


def given_settings(config: TrainConfig) -> set[str]:
    """The fields of `config` that its maker set, whatever their value (a default's too); on the command line,
    the flags given (`flags.made_from`, exactly). (TrainConfig leaves the learning rate and weight decay it
    fills in for its optimizer unset.)"""
    return set(config.model_fields_set)


def saved_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's settings as this version keeps them, for `inherit` and `changed_settings` alike: the one
    place to map what older checkpoints kept otherwise, or lacked. A setting still missing is this
    invocation's (its default, or as given)."""
    from .data import saved_data_settings

    return dict(saved_data_settings(settings))


def from_checkpoint(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's settings (`saved_settings`) as TrainConfig's fields, by field name (`checkpoint` for its
    `activation_checkpointing`); what is not a field (processes) is left out."""
    fields = {field.serialization_alias or name: name for name, field in TrainConfig.model_fields.items()}
    return {fields[key]: value for key, value in saved.items() if key in fields}


def inherit(config: TrainConfig, saved: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The settings a resumed run goes on with, by field name: its checkpoint's (`saved`), with those given
    (`given_settings`) and this invocation's own (`NOT_INHERITED`) on top; and the names of those taken
    from the checkpoint. They are data, to be validated as given ones are."""
    given = given_settings(config)
    settings = dict(config)
    taken = {name: value for name, value in from_checkpoint(saved).items()
             if name not in given and name not in NOT_INHERITED}
    settings.update(taken)
    return settings, list(taken)


def inherited_words(config: TrainConfig, settings: dict[str, Any], taken: list[str]) -> str:
    """The settings taken from the checkpoint that differ from what this invocation alone would have run
    with, as the flags that give them (`--optimizer adamw --lr 0.01`); "" if none."""
    alone = dict(config)
    if "optimizer" in taken:  # the learning rate and weight decay TrainConfig fills in follow the optimizer
        filled = TrainConfig(spec=config.spec, optimizer=settings["optimizer"])
        alone.update({name: getattr(filled, name) for name in ("lr", "weight_decay")})
    return " ".join(flag_words(TrainConfig, name, settings[name]) for name in settings
                    if name in taken and settings[name] != alone[name])
