"""How the front end scales: read, validate, plan and build time for big specs.

    python benchmarks/frontend.py                 # the 500-area, 200-step spec
    python benchmarks/frontend.py --quick         # 10 to 300 areas x 10 to 300 steps (make bench)
    python benchmarks/frontend.py --grid          # 10 to 1,000 areas x 10 to 1,000 steps

A synthetic ventral-stream-like sheet: areas in up to 20 levels; every area has
a residual self edge, a lateral edge to its neighbour, a feedforward edge to the
area above it and a feedback edge from it, all firing at every step (so about
four edges per area), 8 channels at 8x8. *firings*: edge x step pairs that
compute. Build makes the module for real (weights allocated and initialised)
with one norm per edge (`norm: shared`); per-step norms add one BatchNorm
module per edge and step, and `--per-step` measures that too. Times are
medians of several runs (one for the biggest), in one process; the last column
should stay flat if the work grows linearly with areas x steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml
from common import write_json

from cortexgraph import Limits, analyze
from cortexgraph.construct import construct
from cortexgraph.plan import PlanFamily
from cortexgraph.source import parse_text
from cortexgraph.spec import parse_spec


def sheet_spec(areas: int, steps: int, norm: str = "per_step") -> str:
    levels = max(1, min(20, areas, steps // 2))
    width = -(-areas // levels)
    names = [f"A{i}" for i in range(areas)]
    transitions = {}
    for i, name in enumerate(names):
        row = {name: "residual"}
        if (i + 1) % width and i + 1 < areas:
            row[names[i + 1]] = "conv"  # lateral
        if i + width < areas:
            row[names[i + width]] = "conv"  # feedforward
        if i >= width:
            row[names[i - width]] = "conv"  # feedback
        transitions[name] = row
    doc = {"cortexgraph": 1, "name": f"sheet-{areas}x{steps}", "input": {"channels": 8, "size": 8},
           "areas": {n: {"channels": 8, "size": 8} for n in names}, "inputs": {n: "once" for n in names[:width]},
           "steps": steps, "defaults": {"norm": norm}, "transitions": transitions,
           "readout": {"area": names[(levels - 1) * width], "head": {"classes": 10}}}
    return yaml.safe_dump(doc, sort_keys=False)


def time_once(text: str, limits: Limits, build: bool) -> dict[str, float]:
    t0 = time.perf_counter()
    data, source = parse_text(text, "bench.yaml")
    t1 = time.perf_counter()
    spec = parse_spec(data, source)
    t2 = time.perf_counter()
    analysis = analyze(spec, limits)
    t3 = time.perf_counter()
    plan = PlanFamily(analysis).plan()
    t4 = time.perf_counter()
    if build:
        construct(plan)
    t5 = time.perf_counter()
    firings = sum(len(f) for now in analysis.timeline.updates for f in now.values())
    return {"read": t1 - t0, "schema": t2 - t1, "analyze": t3 - t2, "plan": t4 - t3, "build": t5 - t4,
            "total": t5 - t0, "firings": firings}


def measure(areas: int, steps: int, repeats: int, norm: str, build: bool) -> dict[str, float]:
    text = sheet_spec(areas, steps, norm)
    limits = Limits(areas=max(areas, 1000), steps=max(steps, 1000), firings=10**8)
    runs = [time_once(text, limits, build) for _ in range(repeats)]
    return {"areas": areas, "steps": steps, **{k: statistics.median(r[k] for r in runs) for k in runs[0]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", action="store_true", help="10 to 1,000 areas x 10 to 1,000 steps")
    parser.add_argument("--quick", action="store_true", help="10 to 300 areas x 10 to 300 steps")
    parser.add_argument("--per-step", action="store_true", help="build with one norm per step (TSBN)")
    parser.add_argument("--no-build", action="store_true", help="stop after the plan")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    sizes = [(500, 200)]
    if args.grid:
        sizes = [(a, s) for a in (10, 100, 1000) for s in (10, 100, 1000)]
    elif args.quick:
        sizes = [(a, s) for a in (10, 100, 300) for s in (10, 100, 300)]
    norm = "per_step" if args.per_step else "shared"
    print(f"norm: {norm}; times in seconds")
    print(f"{'areas':>6} {'steps':>6} {'firings':>9} {'read':>7} {'schema':>7} {'analyze':>8} {'plan':>7} "
          f"{'build':>7} {'total':>7}  us/firing")
    rows = []
    for areas, steps in sizes:
        r = measure(areas, steps, args.repeats if areas * steps <= 100_000 else 1, norm, not args.no_build)
        rows.append(r)
        print(f"{areas:>6} {steps:>6} {int(r['firings']):>9} {r['read']:7.3f} {r['schema']:7.3f} {r['analyze']:8.3f} "
              f"{r['plan']:7.3f} {r['build']:7.3f} {r['total']:7.3f}  {1e6 * r['total'] / max(r['firings'], 1):8.2f}",
              flush=True)
    write_json(args.json, {"frontend": rows, "norm": norm})


if __name__ == "__main__":
    main()
