"""What pruning silent and unread work saves, against the naive unrolling other tools do.

    python benchmarks/pruning.py --quick           # part of `make bench`
    python benchmarks/pruning.py --json out.json

A 4-area network with feedback (liao2016/frnn4-cifar) read out at its top
area at step T. The naive unrolling computes every edge at every step it is
listed, from every area, silent or not (zeros until signal arrives), as
graph-to-module tools do; cortexgraph runs the Plan, which drops calls from
silent areas and calls whose result cannot reach the readout by step T.
Both use the same modules and weights. The predicted ratio is the Plan's
FLOPs over the naive unrolling's (flop_counter, per call); the measured one is
the median of per-repeat time ratios (forward, eval mode).
"""

from __future__ import annotations

import argparse

import torch
from common import interleaved, machine, median_ratio, ms, write_json

from cortexgraph import build
from cortexgraph.analysis import INPUT
from cortexgraph.summary import plan_flops


def naive_calls(model, steps: int) -> list[tuple[int, str, str]]:
    """(step, edge, weight set) for every edge at every step it is listed (none of the Plan's pruning)."""
    calls = []
    groups = model.plan.weight_sets
    for edge in model.plan.edges.values():
        owned = [g for g in groups.values() if g.edge == edge.name]
        for t in edge.fires_until(steps):
            group = next((g for g in owned if t in g.steps), owned[-1])
            calls.append((t, edge.name, group.path))
    return calls


def naive_forward(model, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Every area at every step: zeros stand in for silent areas."""
    plan = model.plan
    batch = x.shape[0]
    prenet = model.prenet(x)
    history = {area: [prenet.new_zeros(batch, *plan.shapes[area])] for area in model.spec.areas}
    by_step: dict[int, list] = {}
    for t, name, group in naive_calls(model, steps):
        by_step.setdefault(t, []).append((plan.edges[name], group))
    for edge, _ in by_step.get(0, []):
        history[edge.target][0] = prenet
    for t in range(1, steps + 1):
        new = {}
        for edge, group in by_step.get(t, []):
            source = prenet if edge.source == INPUT else history[edge.source][max(t - edge.delay, 0)]
            norm_step = t if t in model.plan.weight_sets[group].steps else model.plan.weight_sets[group].steps[-1]
            out = model.weight_set(group)(source, norm_step)
            new[edge.target] = out if edge.target not in new else new[edge.target] + out
        for area, values in history.items():
            values.append(new.get(area, values[-1]))
    return model.head(history[model.spec.readout.area][steps])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    repeats, warmup = (5, 1) if args.quick else (15, 2)
    size, batch = (16, 32) if args.quick else (32, 32)
    model = build("liao2016/frnn4-cifar", size=size).eval()
    flops = plan_flops(model.plan)
    x = torch.randn(batch, 3, size, size)
    info = machine()
    print(f"machine: {info['cpu']}, {info['threads']} threads; liao2016/frnn4-cifar at {size}x{size}, batch {batch}")
    print(f"{'readout step':>12} {'calls':>11} {'predicted':>9} {'naive':>9} {'pruned':>9} {'measured':>9}")
    rows = []
    for steps in (3, 4, 6, 10):
        plan = model.plan_for(steps)
        planned = sum(flops[c.weights.path] for u in plan.updates for c in u.calls)
        naive = sum(flops[group] for _, _, group in naive_calls(model, steps))
        with torch.no_grad():
            assert model(x, steps=steps).shape == naive_forward(model, x, steps).shape
            times = interleaved({"naive": lambda s=steps: naive_forward(model, x, s),
                                 "pruned": lambda s=steps: model(x, steps=s)}, repeats, warmup)
        row = {"readout_step": steps, "calls": plan.calls, "naive_calls": len(naive_calls(model, steps)),
               "predicted_ratio": planned / naive, "naive_ms": ms(times["naive"]), "pruned_ms": ms(times["pruned"]),
               "measured_ratio": median_ratio(times, "pruned", "naive")}
        rows.append(row)
        print(f"{steps:>12} {row['calls']:>4} of {row['naive_calls']:>4} {row['predicted_ratio']:9.3f} "
              f"{row['naive_ms']:7.1f}ms {row['pruned_ms']:7.1f}ms {row['measured_ratio']:9.3f}", flush=True)
    print("(ratios: pruned / naive; below 1 is faster. The naive unrolling also computes the silent "
          "areas' convolutions of zeros.)")
    write_json(args.json, {"pruning": rows})


if __name__ == "__main__":
    main()
