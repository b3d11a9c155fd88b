"""Checkpoints: written whole or not at all, read with `weights_only=True`, the spec validated again.

A checkpoint holds the spec it was trained from (as its canonical dict) and
the run's settings beside the weights, so `build("run/checkpoint.pt")`
restores the model from the file alone.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path
from .source import CHECKPOINT_SUFFIXES

FORMAT = "cortexgraph-checkpoint"
VERSION = 1
SUFFIXES = CHECKPOINT_SUFFIXES


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint: one line says why."""


def is_checkpoint_path(spec: Any) -> bool:
    return isinstance(spec, (str, Path)) and Path(spec).suffix in SUFFIXES


def save_checkpoint(path: str | Path, **payload: Any) -> None:
    """Write `payload` (spec, model, settings, epoch, ...) to `path` atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The payload of a checkpoint, its structure checked; one line (CheckpointError) if it is not one.

    Tensors are mapped from the file, not read: a checkpoint costs memory only for what is used of it,
    and entries compressed to inflate (a "zip bomb") are refused before anything is read."""
    path = Path(path)
    payload = read_torch_file(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cortexgraph checkpoint (no '{FORMAT}' marker); "
                              "load other weights through cortexgraph.interop")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} is checkpoint format version {payload.get('version')!r}; "
                              f"this cortexgraph reads version {VERSION}")
    problem = _structure_problem(payload)
    if problem:
        raise CheckpointError(f"{path} is damaged or was not written by cortexgraph: {problem}")
    return payload


def read_torch_file(path: str | Path, what: str = "a checkpoint", error: type[ValueError] = CheckpointError) -> Any:
    """What a file torch.save wrote holds, read safely: the one reader of weight files (checkpoints and
    every interop loader). Only tensors and plain data (`weights_only=True`); an archive's listing is
    checked before anything is read, its tensors mapped from the file, not read. A file in torch's
    legacy format (before 1.6: not an archive, nothing compressed) is read as `torch.load` reads it
    where `what` is not a checkpoint (cortexgraph never wrote one). One line (`error`) on failure."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path} is not a file (it is {'a folder' if stat.S_ISDIR(info.st_mode) else 'a device'})")
    archive = zipfile.is_zipfile(path)
    if archive or what == "a checkpoint":
        _check_archive(path, error, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=archive)
    except Exception as exc:  # torch.load fails in many ways on a damaged or foreign file
        raise error(load_failure(path, exc, what)) from None


def _check_archive(path: Path, error: type[ValueError] = CheckpointError, what: str = "a checkpoint") -> None:
    """torch.save writes a zip archive of uncompressed entries: refuse anything else before reading it."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except Exception as exc:  # zipfile fails in many ways on damaged archives (BadZipFile, OSError, decoding)
        raise error(f"{path} cannot be read as {what} (not a whole zip archive, as torch.save "
                              f"writes: {exc}); it may be truncated, or not a cortexgraph checkpoint") from None
    packed = [e for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed:
        inflated = sum(e.file_size for e in packed)
        raise error(f"{path} is not {what} torch.save wrote: {len(packed)} of its entries are "
                              f"compressed (torch.save never compresses), declaring {inflated:,} bytes in "
                              f"{sum(e.compress_size for e in packed):,}; it was not read")


def load_failure(path: Path, exc: Exception, what: str = "a checkpoint") -> str:
    """torch.load's failure on `path` in one line; never its advice to load with weights_only=False
    (which runs whatever code the file holds)."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:  # a pickle that names code to run
            return (f"{path} is refused: it holds objects other than tensors and plain data, such as "
                    f"{found.group(1)}, which would run code when loaded; cortexgraph never loads such files")
        # Otherwise not a pickle torch can read (random bytes, say): the reason is the line after torch's advice.
        lines = [line for line in lines[1:] if not line.startswith(("Please file", "Check the documentation"))]
    reason = (lines or [type(exc).__name__])[0][:200]
    return (f"{path} cannot be read as {what} ({reason}); it may be truncated"
            + (", or not a cortexgraph checkpoint" if what == "a checkpoint" else ""))


def resume_problem(payload: dict[str, Any]) -> str | None:
    """What a checkpoint lacks to resume training from (it may still hold a model to build)."""
    for key in ("optimizer", "epoch", "settings"):
        if key not in payload:
            return f"it has no {key!r} (a model saved without its training state)"
    return None


def _structure_problem(payload: dict[str, Any]) -> str | None:
    """The first way the payload's structure is not what `save_checkpoint` writes, in words."""
    for key in ("spec", "model"):
        if key not in payload:
            return f"it has no {key!r}"
    if not isinstance(payload["spec"], dict):
        return f"its 'spec' is {type(payload['spec']).__name__}, not a mapping"
    model = payload["model"]
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in model.items()):
        return "its 'model' is not a mapping of names to tensors"
    optimizer = payload.get("optimizer", {"state": {}, "param_groups": []})
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list)):
        return "its 'optimizer' is not an optimizer's state (state and param_groups)"
    epoch = payload.get("epoch", 0)
    if type(epoch) is not int or epoch < 0:
        return f"its 'epoch' is {epoch!r}, not a count of epochs"
    metrics = payload.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
        return "its 'metrics' are not a list of epochs"
    if not isinstance(payload.get("settings", {}), dict):
        return "its 'settings' are not a mapping"
    return None


ALLOW_NONFINITE = "pass --allow-nonfinite, or allow_nonfinite=True, to load it anyway"


def check_finite(state: Mapping[str, torch.Tensor], source: Any, allow: bool = False,
                 error: type[ValueError] = CheckpointError, hint: str = ALLOW_NONFINITE) -> None:
    """Refuse weights or buffers that are not finite (a model of NaNs evaluates to chance without a word),
    naming the first; `allow` (`--allow-nonfinite`) lets them through."""
    if allow:
        return
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise error(f"{source}: {name} is not finite ({bad:,} of its {tensor.numel():,} values are NaN or "
                        f"infinite); such a model computes nothing useful, so it is not loaded ({hint})")


def load_weights(model, payload: dict[str, Any], path: str | Path, allow_nonfinite: bool = False,
                 hint: str = ALLOW_NONFINITE) -> None:
    """Copy a checkpoint's weights and buffers into `model`, built from the same spec. The names and
    shapes the file declares are checked against the model first: nothing is read from a file whose
    tensors do not fit (they are mapped, not loaded, until copied); then that every value is finite."""
    expected, given = model.state_dict(), payload["model"]
    missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    wrong = [k for k in expected if k in given and (given[k].shape != expected[k].shape
                                                    or given[k].dtype != expected[k].dtype)]
    if missing or unexpected or wrong:
        what = (f"{len(missing)} missing, such as {missing[0]}" if missing else
                f"{len(unexpected)} not in the spec, such as {unexpected[0]}" if unexpected else
                f"{wrong[0]} is {given[wrong[0]].dtype} {tuple(given[wrong[0]].shape)} where the spec makes "
                f"{expected[wrong[0]].dtype} {tuple(expected[wrong[0]].shape)}")
        raise CheckpointError(f"{path}: the weights do not fit its spec ({what})")
    check_finite(given, path, allow_nonfinite, hint=hint)
    model.load_state_dict(given)
