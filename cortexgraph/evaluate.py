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
    # The fraction of the full run's FLOPs not spent. Below zero where early exit cost more than the full
    # run: a sample that runs to the last step has also read the head at every earlier step to check its
    # confidence, which the full run does not (where it reads out at one step).
    flops_saved: float


@torch.no_grad()
def evaluate_exits(model: CortexNet, dataset: Any, thresholds: Sequence[float], batch_size: int = 256,
                   device: str | torch.device = "cpu") -> list[ExitRow]:
    """The full run, then an early-exit run at each threshold, over `dataset` ((image, label) pairs).

    A sample that exits before the last step is scored on its logits at its exit step (the ones whose
    confidence made it exit). A sample that runs to the last step has run the whole unroll, and is scored
    on the full run's prediction, `model(x)`: where the spec reads out at several steps that is the one
    `readout.decoder` makes of their logits (by default their mean; docs/semantics.md, "Readout"), not the
    last step's logits that `model(x, exit_threshold=p)` returns for it. So a threshold that no sample
    reaches early scores what the full run scores, and every difference between a threshold's row and the
    full row comes from the samples that exited early. The decoder costs no FLOPs worth counting: the
    early-exit run has already read the head at every readout step of such a sample."""
    model = model.to(device).eval()
    by_step, whole = exit_flops(model)
    last = max(model.spec.readout_steps)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    runs: tuple[float | None, ...] = (None, *thresholds)
    correct, steps, flops = [0] * len(runs), [0] * len(runs), [0] * len(runs)
    seen = 0
    for x, y in loader:  # each batch is read once; the full run's prediction serves every threshold
        x, y = x.to(device), y.to(device)
        full = model(x)
        seen += len(y)
        for i, threshold in enumerate(runs):
            if threshold is None:
                logits, exits = full, torch.full_like(y, last)
            else:
                early, exits = model(x, exit_threshold=threshold)
                logits = torch.where((exits == last)[:, None], full, early)
            correct[i] += int((logits.argmax(1) == y).sum())
            steps[i] += int(exits.sum())
            flops[i] += whole * len(y) if threshold is None else sum(by_step[int(t)] for t in exits)
    return [ExitRow(threshold, correct[i] / seen, steps[i] / seen, flops[i] / seen, 1 - flops[i] / seen / whole)
            for i, threshold in enumerate(runs)]


def _percent(fraction: float) -> str:
    """A fraction as a percentage to one decimal, rounded before it is signed: a fraction a hair below zero
    (an early-exit run that saved nothing, and paid a few head readings) reads 0.0%, never -0.0%."""
    return f"{round(100 * fraction, 1) + 0.0:5.1f}%"  # -0.0 + 0.0 is 0.0


def exit_table(rows: list[ExitRow]) -> str:
    lines = [f"{'threshold':>9}  {'accuracy':>8}  {'mean exit step':>14}  {'FLOPs/image':>11}  {'saved':>6}"]
    for r in rows:
        name = "full" if r.threshold is None else f"{r.threshold:g}"
        saved = "" if r.threshold is None else _percent(r.flops_saved)
        lines.append(f"{name:>9}  {100 * r.accuracy:7.2f}%  {r.mean_exit_step:14.2f}  "
                     f"{r.flops_per_image / 1e6:10.2f}M  {saved:>6}")
    return "\n".join(lines)


def rows_as_dicts(rows: list[ExitRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
