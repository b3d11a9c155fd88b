"""What a run leaves behind: per-epoch metrics (CSV and JSON) and the accuracy-vs-readout-step plot."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_path


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None: JSON has no such numbers (json.dumps would
    write a bare `NaN`, which JSON readers refuse)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_metrics(out: Path, run: dict[str, Any], epochs: list[dict[str, Any]]) -> None:
    """metrics.json (the run's settings and every epoch; a number that is not finite is null) and
    metrics.csv (one row per epoch, nested records as `record.field` columns, accuracy at each readout
    step as `acc@<step>` columns)."""
    text = json.dumps(json_safe({"run": run, "epochs": epochs}), indent=2, allow_nan=False)
    _write_text(out / "metrics.json", text + "\n")
    steps = sorted({int(t) for e in epochs for t in e.get("anytime", {})})
    rows = [_flat({k: v for k, v in e.items() if k != "anytime"}) for e in epochs]
    columns = list(dict.fromkeys(k for row in rows for k in row))  # every epoch's, in order (a resumed run
    buffer = io.StringIO()                                          # may have recorded more)
    writer = csv.writer(buffer)
    writer.writerow(columns + [f"acc@{t}" for t in steps])
    for e, row in zip(epochs, rows):
        anytime = {int(t): v for t, v in e.get("anytime", {}).items()}
        writer.writerow([_cell(row.get(k, "")) for k in columns] + [anytime.get(t, "") for t in steps])
    _write_text(out / "metrics.csv", buffer.getvalue())


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _cell(value: Any) -> Any:
    return "; ".join(map(str, value)) if isinstance(value, list) else value


def write_anytime(out: Path, name: str, anytime: dict[int, float], readout_steps: tuple[int, ...],
                  classes: int) -> Path:
    """anytime.csv and anytime.png: test accuracy when reading out at each step."""
    steps = sorted(anytime)
    _write_text(out / "anytime.csv", "step,test_accuracy\n" + "".join(f"{t},{anytime[t]:.6f}\n" for t in steps))
    return plot_lines(out / "anytime.png", {name: (steps, [100 * anytime[t] for t in steps])},
                      xlabel="readout step (unroll depth)", ylabel="test accuracy (%)",
                      title=f"{name}: accuracy vs readout time", marks=readout_steps, chance=100 / classes)


def plot_lines(path: Path, series: dict[str, tuple[list, list]], xlabel: str, ylabel: str, title: str,
               marks: tuple = (), chance: float | None = None) -> Path:
    """A simple line plot written as PNG (matplotlib's Agg backend: no display needed). With `chance`
    (an accuracy in percent) the axis is fixed at 0-100% with chance level marked, so that a flat
    curve at chance does not look like a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=130)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.6, label=label)
    for x in marks:
        ax.axvline(x, color="#999999", linestyle=":", linewidth=1)
    if chance is not None:
        ax.axhline(chance, color="#b2182b", linestyle="--", linewidth=1, label=f"chance ({chance:.3g}%)")
        ax.set_ylim(0, 100)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if len(series) > 1 or chance is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def result_lines(result: dict[str, Any]) -> list[str]:
    """What a finished run says: its test accuracy (at every readout step) and where it wrote everything."""
    if not result["epochs"]:
        return []
    out = result["out"]
    if result.get("plot"):
        steps = ", ".join(f"t={t} {100 * a:.1f}%" for t, a in sorted(result["anytime"].items()))
        return [f"test accuracy by readout step: {steps}",
                f"wrote {out}/metrics.csv, metrics.json, checkpoint.pt and the plot {result['plot']}"]
    return [f"test accuracy {100 * result['test_acc']:.1f}%; wrote {out}/metrics.csv, metrics.json and checkpoint.pt"]


def epoch_warnings(train: dict[str, Any], test: dict[str, Any], classes: int) -> list[str]:
    """What makes an epoch's numbers untrustworthy: losses not finite, or orders of magnitude above the
    loss of a uniform guess (log of the classes), where a run starts; skipped optimizer steps."""
    chance = math.log(classes)
    warnings = []
    for part, loss in (("train", train["train_loss"]), ("test", test["test_loss"])):
        if not math.isfinite(loss):
            warnings.append(f"the {part} loss is {loss}: the model's outputs are not finite")
        elif loss > 100 * chance:
            warnings.append(f"the {part} loss is {loss:.3g}, {loss / chance:.0e} times a uniform guess's "
                            f"({chance:.2f}): training diverges; lower the learning rate or clip the "
                            "gradients (--clip-grad)")
    if train["skipped_steps"]:
        warnings.append(f"{train['skipped_steps']} optimizer steps skipped (non-finite gradients)")
    for part, record in (("training", train["unreadable"]), ("test", test["test_unreadable"])):
        if record["count"]:
            warnings.append(f"{record['count']} {part} files could not be read and were left out, such as "
                            f"{record['files'][0]} (all named in metrics.json)")
    return warnings
