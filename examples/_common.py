"""What the experiment scripts share: their options, one training run, a CSV.

Each script trains under `--out` (runs/examples/<name>: every run's metrics and checkpoint) and writes
its CSV and plot to `--results` (examples/results/<data>), the files examples/README.md's tables are
made from (`python examples/tables.py`)."""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from cortexgraph.train import TrainConfig, train


def options(name: str, doc: str, epochs: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits", help="digits (offline, CPU-sized) or cifar10 (for a GPU)")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=f"runs/examples/{name}", help="where the runs go")
    parser.add_argument("--results", help="where the CSV and plot go (default: examples/results/DATA)")
    args = parser.parse_args()
    args.size = 16 if args.data == "digits" else None  # CIFAR-shaped specs at the digits' (upsampled) size
    args.results = args.results or str(Path(__file__).parent / "results" / args.data)
    for folder in (args.out, args.results):
        Path(folder).mkdir(parents=True, exist_ok=True)
    return args


def spec_file(spec: dict[str, Any], folder: str) -> str:
    """Write a spec variant to a file, so the run's checkpoint names a file one can read."""
    path = Path(folder) / f"{spec['name']}.json"
    path.write_text(json.dumps(spec, indent=2))
    return str(path)


def run(spec: str, args: argparse.Namespace, label: str, **changes: Any) -> dict[str, Any]:
    """Train one model; returns its metrics, with the wall time."""
    settings = dict(spec=spec, data=args.data, data_dir=args.data_dir, out=f"{args.out}/{label}",
                    epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw", lr=3e-3,
                    device=args.device, seed=args.seed, size=args.size, progress=False,
                    overwrite=True)  # rerunning an example replaces its own runs
    start = time.perf_counter()
    result = train(TrainConfig(**{**settings, **changes}))
    result["wall_seconds"] = time.perf_counter() - start
    print(f"  {label}: test accuracy {100 * result['test_acc']:.1f}% ({result['wall_seconds']:.0f} s)", flush=True)
    return result


def compare(args: argparse.Namespace, name: str, title: str, contenders: dict[str, tuple[str, dict[str, Any]]],
            column: str) -> list[dict[str, Any]]:
    """Train each contender (label -> spec, overrides) the same way; write `name`.csv (parameters, final and
    best test accuracy, time) and `name`.png (test accuracy by epoch) to the results folder."""
    from cortexgraph import build
    from cortexgraph.train.report import plot_lines

    rows, curves = [], {}
    for label, (spec, overrides) in contenders.items():
        params = build(spec, size=args.size, **overrides).plan.size.parameters
        result = run(spec, args, label, **overrides)
        epochs = result["epochs"]
        rows.append({column: label, "spec": spec, "parameters": params, "test_accuracy": result["test_acc"],
                     "best_test_accuracy": max(e["test_acc"] for e in epochs),
                     "seconds": round(result["wall_seconds"], 1)})
        curves[f"{label} ({params / 1e3:.0f}k parameters)"] = (
            [e["epoch"] for e in epochs], [100 * e["test_acc"] for e in epochs])
    write_csv(f"{args.results}/{name}.csv", rows)
    plot = plot_lines(f"{args.results}/{name}.png", curves, "epoch", "test accuracy (%)", title, chance=10)
    print(f"wrote {plot}")
    for row in rows:
        print(f"{row[column]:>10}: {row['parameters']:>9,} parameters, test accuracy "
              f"{100 * row['test_accuracy']:.1f}% (best {100 * row['best_test_accuracy']:.1f}%)")
    return rows


def by_step(result: dict[str, Any]) -> dict[str, float]:
    """A run's test accuracy at every readout step, as CSV columns `step_<t>`."""
    return {f"step_{t}": result["anytime"][t] for t in sorted(result["anytime"])}


def report_by_step(args: argparse.Namespace, name: str, title: str, column: str, rows: list[dict[str, Any]],
                   last: int) -> None:
    """Write `name`.csv and `name`.png (accuracy by readout step, one line per row) and print each row."""
    from cortexgraph.train.report import plot_lines

    write_csv(f"{args.results}/{name}.csv", rows)
    curves = {}
    for r in rows:
        steps = sorted(int(k.removeprefix("step_")) for k in r if k.startswith("step_"))
        curves[f"{r[column]} ({r['parameters'] / 1e3:.0f}k)"] = (steps, [100 * r[f"step_{t}"] for t in steps])
    plot = plot_lines(f"{args.results}/{name}.png", curves, "readout step", "test accuracy (%)", title,
                      marks=(last,), chance=10)
    print(f"wrote {plot}")
    for r in rows:
        steps = ", ".join(f"{100 * v:.1f}" for k, v in r.items() if k.startswith("step_"))
        print(f"{r[column]} ({r['parameters']:,} parameters): accuracy by step {steps}")


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    return f"{platform.machine()}, {device}, torch {torch.__version__}"


def scratch() -> str:
    return tempfile.mkdtemp(prefix="cortexgraph-example-")
