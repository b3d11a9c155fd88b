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
"""

from __future__ import annotations

from typing import Any

# Settings of how the run is carried out: free on resume, recorded per epoch.
PER_EPOCH = ("device", "amp", "channels_last", "processes", "workers", "activation_checkpointing", "compile",
             "on_nonfinite")
FREE = ("device", "amp", "channels_last", "workers", "activation_checkpointing", "compile", "on_nonfinite",
        "data_dir", "out", "resume", "overwrite", "progress", "anytime", "allow_imports", "spec",
        "steps", "classes", "size", "share", "norm")  # the spec they make is compared on its own

# Settings of what is trained: fixed for a run's life (epochs has its own rule below).
FIXED = ("data", "batch_size", "processes", "optimizer", "lr", "momentum", "weight_decay", "schedule", "step_size",
         "gamma", "label_smoothing", "seed", "clip_grad", "limit_batches")


def _relevant(name: str, settings: dict[str, Any]) -> bool:
    """Settings that the run's recipe does not use cannot change it."""
    if name == "momentum":
        return settings.get("optimizer") == "sgd"
    if name in ("step_size", "gamma"):
        return settings.get("schedule") == "step"
    return True


def _flag(name: str, value: Any) -> str:
    flag = "--" + name.replace("_", "-")
    if value is None:
        return f"no {flag}"
    return f"{flag} {value}"


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
    return f"{_flag(name, new)} (the run: {_flag(name, old)})"


def per_epoch(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings an epoch ran under that a resumed run may have changed."""
    return {name: settings.get(name) for name in PER_EPOCH}
