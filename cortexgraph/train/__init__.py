"""Training: `cortexgraph train SPEC` and `cortexgraph.train.train(TrainConfig(...))`.

The usual recipe (SGD with momentum or AdamW, cosine or step schedule, weight
decay, label smoothing; bf16 autocast and channels-last on GPUs), a progress
bar, per-epoch metrics in CSV and JSON, test accuracy at every readout step,
and a checkpoint after every epoch written atomically with the spec and the
settings inside. Each epoch seeds its own randomness from (seed, epoch), so a
run resumed from a checkpoint continues exactly as if it had never stopped.

The settings are `config.py`, the loop `loop.py`, data sets `data.py`; this
face only re-exports, loading torch on first use (the command line builds its
flags from `TrainConfig` without it).
"""

from __future__ import annotations

from typing import Any

from .config import TrainConfig

_LAZY = {"train": "loop", "result_lines": "report", "TrainingError": "loop", "RefusedRun": "loop",
         "Interrupted": "loop", "DataError": "data"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'cortexgraph.train' has no attribute {name!r}")


__all__ = ["TrainConfig", *_LAZY]
