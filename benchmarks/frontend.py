"""How long the front end takes on big specs: read, validate and analyse.

    python benchmarks/frontend.py                 # the 500-area, 200-step spec
    python benchmarks/frontend.py --grid          # 10 to 1,000 areas x 10 to 1,000 steps

A synthetic ventral-stream-like sheet: areas in up to 20 levels; every area has
a residual self edge, a lateral edge to its neighbour, a feedforward edge to the
area above it and a feedback edge from it, all firing at every step (so about
four edges per area). Times are medians of several runs, in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml

from cortexgraph import Limits, analyze
from cortexgraph.source import parse_text
from cortexgraph.spec import parse_spec


def sheet_spec(areas: int, steps: int) -> str:
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
           "steps": steps, "transitions": transitions,
           "readout": {"area": names[(levels - 1) * width], "head": {"classes": 10}}}
    return yaml.safe_dump(doc, sort_keys=False)


def time_once(text: str, limits: Limits) -> dict[str, float]:
    t0 = time.perf_counter()
    data, source = parse_text(text, "bench.yaml")
    t1 = time.perf_counter()
    spec = parse_spec(data, source)
    t2 = time.perf_counter()
    analysis = analyze(spec, limits)
    t3 = time.perf_counter()
    firings = sum(len(now.get(a, ())) for now in analysis.timeline.updates for a in now)
    return {"read": t1 - t0, "schema": t2 - t1, "analyze": t3 - t2, "total": t3 - t0, "firings": firings}


def measure(areas: int, steps: int, repeats: int) -> dict[str, float]:
    text = sheet_spec(areas, steps)
    limits = Limits(areas=max(areas, 1000), steps=max(steps, 1000), firings=10**8)
    runs = [time_once(text, limits) for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", action="store_true", help="sweep areas and steps")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [(500, 200)]
    if args.grid:
        sizes = [(a, s) for a in (10, 100, 1000) for s in (10, 100, 1000)]
    print(f"{'areas':>6} {'steps':>6} {'firings':>9} {'read':>8} {'schema':>8} {'analyze':>8} {'total':>8}  us/firing")
    for areas, steps in sizes:
        r = measure(areas, steps, args.repeats if areas * steps <= 200_000 else 1)
        print(f"{areas:>6} {steps:>6} {int(r['firings']):>9} {r['read']:8.3f} {r['schema']:8.3f} "
              f"{r['analyze']:8.3f} {r['total']:8.3f}  {1e6 * r['total'] / max(r['firings'], 1):8.2f}")


if __name__ == "__main__":
    main()
