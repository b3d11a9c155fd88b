"""Checkpoints: written whole or not at all, read with `weights_only=True`, the spec validated again.

A checkpoint holds the spec it was trained from (as its canonical dict) and
the run's settings beside the weights, so `build("run/checkpoint.pt")`
restores the model from the file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path

FORMAT = "cortexgraph-checkpoint"
VERSION = 1
SUFFIXES = (".pt", ".pth", ".ckpt")


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint: one line says why."""


def is_checkpoint_path(spec: Any) -> bool:
    return isinstance(spec, (str, Path)) and Path(spec).suffix in SUFFIXES


def save_checkpoint(path: str | Path, **payload: Any) -> None:
    """Write `payload` (spec, model, settings, epoch, ...) to `path` atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load fails in many ways on a damaged or foreign file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({reason[:200]}); it may be truncated, "
                              "or not a cortexgraph checkpoint") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cortexgraph checkpoint (no '{FORMAT}' marker); "
                              "load other weights through cortexgraph.interop")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} is checkpoint format version {payload.get('version')!r}; "
                              f"this cortexgraph reads version {VERSION}")
    for key in ("spec", "model"):
        if key not in payload:
            raise CheckpointError(f"{path} has no {key!r}: it is incomplete")
    return payload


def load_model(path: str | Path, payload: dict[str, Any] | None = None, allow_imports: bool = False):
    """The model saved in a checkpoint; its spec is validated again before anything is built."""
    from .analysis import analyze
    from .model import construct
    from .plan import make_plan
    from .source import SourceMap
    from .spec import parse_spec

    payload = payload or read_checkpoint(path)
    spec = parse_spec(payload["spec"], SourceMap(f"{path} (its spec)"))
    model = construct(make_plan(analyze(spec, allow_imports=allow_imports)))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(f"{path}: the weights do not fit its spec ({first[:200]})") from None
    return model
