"""Early exit in time, not only in FLOPs: the test split through `model(x)` and through
`model(x, exit_threshold=p)`, per batch, interleaved (common.interleaved), for a trained checkpoint.

    python examples/early_exit.py          # trains the two digits models this reads (under a minute)
    python benchmarks/early_exit.py        # their checkpoints, thresholds 0.5, 0.9, 0.99
    python benchmarks/early_exit.py --checkpoint runs/x/checkpoint.pt --data digits

A batch costs what its slowest sample needs; the rest of it runs on without the samples that exited.
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from common import interleaved, machine, median_ratio, ms, write_json

from cortexgraph import build
from cortexgraph.summary import exit_flops
from cortexgraph.train.data import make_data

RUNS = "../runs/examples/early_exit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", nargs="+", default=[f"{RUNS}/loss at every step/checkpoint.pt",
                                                             f"{RUNS}/loss at the last step/checkpoint.pt"])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--threshold", type=float, nargs="+", default=[0.5, 0.9, 0.99])
    parser.add_argument("--batch-size", type=int, default=360)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info['cpu']}, {info['threads']} threads, torch {info['torch']}")
    rows = []
    for path in args.checkpoint:
        model = build(path).eval()
        x = torch.stack([image for image, _ in make_data(args.data, model.spec).test])[:args.batch_size]
        by_step, whole = exit_flops(model)
        for p in args.threshold:
            with torch.no_grad():
                steps = model(x, exit_threshold=p).steps
                times = interleaved({"full": partial(model, x), "early": partial(model, x, exit_threshold=p)},
                                    args.repeats, 3)
            flops = sum(by_step[int(t)] for t in steps) / len(steps)
            rows.append({"checkpoint": path, "threshold": p, "batch": len(x), "full_ms": ms(times["full"]),
                         "early_ms": ms(times["early"]), "time_ratio": median_ratio(times, "early", "full"),
                         "flops_ratio": flops / whole, "mean_exit_step": float(steps.float().mean()),
                         "last_exit_step": int(steps.max())})
            r = rows[-1]
            print(f"{path.split('/')[-2]:>22} p={p:<5g} full {r['full_ms']:7.1f}ms early {r['early_ms']:7.1f}ms "
                  f"time {r['time_ratio']:.3f} FLOPs {r['flops_ratio']:.3f} (mean exit step "
                  f"{r['mean_exit_step']:.2f}, last {r['last_exit_step']})", flush=True)
    write_json(args.json, {"early_exit": rows})


if __name__ == "__main__":
    main()
