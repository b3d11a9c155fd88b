"""Early exit, measured: accuracy, mean exit step and FLOPs against the full unroll (`cortexgraph evaluate`).

Each sample stops at the first step whose softmax confidence reaches a threshold
(`model(x, exit_threshold=p)`); a run at every threshold asked, and the full run
(`model(x)`), on the test split of the data the model is evaluated on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from .model import CortexNet
from .summary import exit_flops


@dataclass(frozen=True)
class ExitRow:
    threshold: float | None  # None: the full run, model(x)
    accuracy: float
    mean_exit_step: float
    flops_per_image: float
    flops_saved: float  # the fraction of the full run's FLOPs not spent


@torch.no_grad()
def evaluate_exits(model: CortexNet, dataset: Any, thresholds: Sequence[float], batch_size: int = 256,
                   device: str | torch.device = "cpu") -> list[ExitRow]:
    """The full run, then an early-exit run at each threshold, over `dataset` ((image, label) pairs)."""
    model = model.to(device).eval()
    by_step, whole = exit_flops(model)
    last = max(model.spec.readout_steps)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    rows = []
    for threshold in (None, *thresholds):
        correct = seen = steps = flops = 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            if threshold is None:
                logits, exits = model(x), torch.full_like(y, last)
            else:
                logits, exits = model(x, exit_threshold=threshold)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            steps += int(exits.sum())
            flops += whole * len(y) if threshold is None else sum(by_step[int(t)] for t in exits)
        rows.append(ExitRow(threshold, correct / seen, steps / seen, flops / seen, 1 - flops / seen / whole))
    return rows


def exit_table(rows: list[ExitRow]) -> str:
    lines = [f"{'threshold':>9}  {'accuracy':>8}  {'mean exit step':>14}  {'FLOPs/image':>11}  {'saved':>6}"]
    for r in rows:
        name = "full" if r.threshold is None else f"{r.threshold:g}"
        saved = "" if r.threshold is None else f"{100 * r.flops_saved:5.1f}%"
        lines.append(f"{name:>9}  {100 * r.accuracy:7.2f}%  {r.mean_exit_step:14.2f}  "
                     f"{r.flops_per_image / 1e6:10.2f}M  {saved:>6}")
    return "\n".join(lines)


def rows_as_dicts(rows: list[ExitRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
