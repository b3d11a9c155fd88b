"""What the sweep machinery costs beside the training it runs, and what a second worker buys.

    python benchmarks/sweep.py                 # 8 tiny trials for the overhead, 8 small ones per worker count
    python benchmarks/sweep.py --quick         # 4 and 4
    python benchmarks/sweep.py --json results/sweep.json

- Overhead per trial: a grid of tiny trials (one batch of one epoch each) run by `cortexgraph sweep`, against
  the same trainings run by a plain loop of `cortexgraph.train.train` calls in the same process (the
  reference: no Optuna, no study, no trial folders). (sweep - loop) / trials is what a trial costs beyond
  its training: the study's storage (SQLite), the trial's folder and spec file, and sizing its spec.
- Throughput: a grid of small trials (the demo network, one epoch on the digits) with 1 and with 2 worker
  processes, in trials per minute. On a machine with fewer cores than workers x torch's threads, the
  workers share the cores; the ratio says what a second worker buys here.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from common import machine, write_json

from cortexgraph.sweep import load_sweep, run_sweep
from cortexgraph.train import TrainConfig, train

TINY = """cortexgraph: 1
name: tiny
input: {channels: 1, size: 8}
areas: {A: {channels: 4, size: 8}}
inputs: {A: {at: once, op: conv}}
steps: 2
transitions: {A: {A: residual}}
readout: {area: A, head: {classes: 10}}
"""


def sweep_file(folder: Path, name: str, spec: str, trials: int, train_settings: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"cortexgraph-sweep: 1\nname: {name}\nspec: {spec}\ntrain: {train_settings}\n"
                    f"vary: {{seed: {list(range(trials))}}}\n")
    return path


def overhead(folder: Path, trials: int) -> dict[str, float]:
    (folder / "tiny.yaml").write_text(TINY)
    settings = "{data: digits, epochs: 1, batch_size: 64, limit_batches: 1, anytime: false}"
    sweep = load_sweep(sweep_file(folder, "overhead", "tiny.yaml", trials, settings))
    train(TrainConfig(spec=str(folder / "tiny.yaml"), data="digits", epochs=1, limit_batches=1, progress=False,
                      out=str(folder / "warm-up")))  # imports and the digits' first read, for neither side
    start = time.perf_counter()
    for seed in range(trials):
        train(TrainConfig(spec=str(folder / "tiny.yaml"), data="digits", epochs=1, batch_size=64, limit_batches=1,
                          anytime=False, seed=seed, progress=False, out=str(folder / "loop" / str(seed))))
    loop = (time.perf_counter() - start) / trials
    start = time.perf_counter()
    run_sweep(sweep, folder / "sweeps" / "overhead")
    swept = (time.perf_counter() - start) / trials
    return {"loop_s_per_trial": loop, "sweep_s_per_trial": swept, "overhead_s_per_trial": swept - loop}


def throughput(folder: Path, trials: int, workers: int) -> float:
    settings = "{data: digits, epochs: 1, batch_size: 64, optimizer: adamw, lr: 0.003}"
    sweep = load_sweep(sweep_file(folder, f"workers{workers}", "demo/frnn3-digits", trials, settings))
    start = time.perf_counter()
    done = run_sweep(sweep, folder / "sweeps" / f"workers{workers}", workers=workers)
    assert done == trials, f"{done} of {trials} trials finished"
    return 60 * trials / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="4 trials each")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    trials = 4 if args.quick else args.trials
    info = machine()
    print(f"sweep machinery, {trials} trials each ({info['cpu']}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads, torch {info['torch']})")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cost = overhead(folder, trials)
        print(f"| trial of one batch | plain train() loop | cortexgraph sweep | overhead per trial |\n"
              f"| --- | ---: | ---: | ---: |\n"
              f"| seconds per trial | {cost['loop_s_per_trial']:.2f} | {cost['sweep_s_per_trial']:.2f} "
              f"| {cost['overhead_s_per_trial']:.2f} s |")
        rates = {workers: throughput(folder, trials, workers) for workers in (1, 2)}
        print(f"\n| demo network, 1 epoch | 1 worker | 2 workers | ratio |\n| --- | ---: | ---: | ---: |\n"
              f"| trials per minute | {rates[1]:.1f} | {rates[2]:.1f} | {rates[2] / rates[1]:.2f}x |")
    write_json(args.json, {"trials": trials, **cost, "trials_per_minute": {str(k): v for k, v in rates.items()}})


if __name__ == "__main__":
    main()
