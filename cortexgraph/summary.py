"""Plan -> the compile summary: shapes, parameters, FLOPs, arrival.

FLOPs are counted by `torch.utils.flop_counter` for one image, one part of the
Plan at a time (the pre-net, one call of a weight set, one run of a cell, one
reading of the head), each part built alone on the meta device (no weights, no
arithmetic) and counted once for all the parts alike; they count convolutions
and matrix products (two FLOPs per multiply-add), as that counter does. No
model is built: the summary of a spec of any size costs what its parts do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .model import CortexNet
from .parts import cell_module, make_head, prenet_layers, weight_set_module
from .plan import INPUT, CellSet, Plan, Update
from .units import at_step, ms


def _flops(run: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def plan_flops(plan: Plan) -> dict[str, int]:
    """FLOPs of one image through each part of `plan`: the pre-net (`prenet`), one call of each weight set (by
    its path: all its calls cost the same), one run of each cell (`cells.<area>`) and one reading of the head
    (`head`). Parts alike (an op with the same parameters between areas of the same shapes) are counted once."""
    flops: dict[str, int] = {}
    alike: dict[tuple, int] = {}

    def empty(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.empty(1, *shape, device="meta")

    with torch.device("meta"), torch.no_grad():
        prenet = nn.Sequential(*prenet_layers(plan))
        flops["prenet"] = _flops(lambda: prenet(empty(plan.input_shape)))
        for path, wset in plan.weight_sets.items():
            edge, step = plan.edges[wset.edge], (wset.steps or (0,))[0]
            key = ("edge", edge.op, repr(edge.params), plan.shapes[edge.source], plan.shapes[edge.target],
                   repr(edge.norm), edge.activation)
            if key not in alike:  # one step's module: its norms for other steps add no FLOPs
                module = weight_set_module(plan, wset.edge, (step,))
                alike[key] = _flops(lambda m=module, s=step, e=edge: m(empty(plan.shapes[e.source]), s))
            flops[path] = alike[key]
        for area, cell in plan.cell_sets.items():
            given = plan.area_cells[area]
            key = ("cell", cell.name, repr(given.params), plan.shapes[area], given.activation)
            if key not in alike:
                step = (cell.steps or (0,))[0]
                module = cell_module(plan, CellSet(area, cell.name, (step,)))
                alike[key] = _flops(lambda m=module, a=area, s=step: m(empty(plan.shapes[a]), None, None, s))
            flops[cell.path] = alike[key]
        head = make_head(plan)
        features = tuple(empty(plan.shapes[a]) for a in plan.readout_areas)
        flops["head"] = _flops(lambda: head(features[0] if len(features) == 1 else features))
    return flops


def summarize(plan: Plan | CortexNet) -> dict[str, Any]:
    """Everything `cortexgraph compile` reports about a Plan (or a model's), as plain data; nothing is built."""
    plan = plan.plan if isinstance(plan, CortexNet) else plan
    spec = plan.spec
    call_flops = plan_flops(plan)
    prenet_flops, head_flops = call_flops["prenet"], call_flops["head"]

    areas: dict[str, dict[str, Any]] = {}
    for name in spec.areas:
        cell = plan.area_cells[name]  # what it makes of its drive, and what makes that nonlinear ("none")
        areas[name] = {"shape": list(plan.shapes[name]), "cell": {"name": cell.name, "nonlinearity": cell.nonlinearity},
                       "params": plan.parts[name].parameters, "flops": {}, "arrival": plan.arrival[name]}
    schedule = []
    for step, updates in enumerate(plan.schedule):
        entry = {"step": step, "updates": {}, "cells": {}, "flops": 0}
        for update in updates:
            flops = sum(call_flops[c.weights.path] for c in update.calls)
            if update.cell is not None:
                flops += call_flops[update.cell.path]
            areas[update.area]["flops"][step] = flops
            # A modulating edge is marked '*': it scales the drive (1 + g(M)) rather than adding to it; an edge
            # into a cell's named input is marked with it (`out_gate:A->B`).
            entry["updates"][update.area] = [("*" if c.edge.modulating else f"{c.edge.into}:" if c.edge.into else "")
                                             + c.edge.name for c in update.calls]
            if update.cell is not None:
                entry["cells"][update.area] = update.cell.name
            entry["flops"] += flops
        schedule.append(entry)
    total_flops = (prenet_flops * len(plan.frames_entering()) + head_flops * len(plan.reads_out)
                   + sum(s["flops"] for s in schedule))
    return {
        "name": spec.name,
        "input": list(plan.input_shape),
        "steps": plan.steps,
        "dt_ms": spec.dt_ms,
        "readout": {"area": spec.readout.written, "steps": list(plan.readout_steps)},
        "prenet": {"shape": list(plan.shapes[INPUT]), "params": plan.parts["prenet"].parameters,
                   "flops": prenet_flops, "runs": len(plan.frames_entering())},  # once per distinct frame
        "head": {"classes": spec.readout.head.classes, "params": plan.parts["head"].parameters, "flops": head_flops},
        "areas": areas,
        "params": plan.size.parameters,
        "params_unshared": plan.unshared.parameters,
        "flops": total_flops,
        "calls": plan.calls,
        "naive_calls": plan.naive_calls,
        "schedule": schedule,
    }


def exit_flops(model: CortexNet, steps: int | None = None) -> tuple[dict[int, int], int]:
    """FLOPs of one image that exits early (`model(x, exit_threshold=p)`) at each step it may exit at: the
    pre-net, every update of the anytime Plan up to that step, and the head at each step read so far; and
    those of the full run, `model(x, steps=steps)` (the whole unroll, read out at its readout steps)."""
    flops = plan_flops(model.plan)
    last = steps if steps is not None else max(model.spec.readout_steps)
    anytime, full = model.plan_for(last, "all"), model.plan_for(steps)

    def cost(updates: Iterable[Update]) -> int:
        return sum(sum(flops[c.weights.path] for c in u.calls) + (flops[u.cell.path] if u.cell is not None else 0)
                   for u in updates)

    total, by_step, seen, reads_out = 0, {}, set(), set(anytime.reads_out)
    for step, updates in enumerate(anytime.schedule):
        total += cost(updates)
        shown = anytime.frames_entering(step) - seen  # the pre-net runs once per distinct frame
        total += flops["prenet"] * len(shown)
        seen |= shown
        if step in reads_out:
            total += flops["head"]
            by_step[step] = total
    whole = flops["prenet"] * len(full.frames_entering()) + flops["head"] * len(full.reads_out)
    return by_step, whole + cost(full.updates)


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _areas(area: str | list[str]) -> str:
    return area if isinstance(area, str) else "+".join(area)


def format_summary(s: dict[str, Any]) -> str:
    rows = [("", "shape", "cell", "params", "FLOPs/update", "updates", "arrival")]
    rows.append(("pre-net", "x".join(map(str, s["prenet"]["shape"])), "", _count(s["prenet"]["params"]),
                 _count(s["prenet"]["flops"]), str(s["prenet"]["runs"]), at_step(0, s.get("dt_ms"))))
    for name, a in s["areas"].items():
        n = len(a["flops"])
        per = sum(a["flops"].values()) / n if n else 0
        cell = f"{a['cell']['name']} ({a['cell']['nonlinearity'].replace('none', 'linear')})"
        rows.append((name, "x".join(map(str, a["shape"])), cell, _count(a["params"]), _count(per), str(n),
                     at_step(a["arrival"], s.get("dt_ms"))))
    rows.append(("head", f"{s['head']['classes']} classes", "", _count(s["head"]["params"]), _count(s["head"]["flops"]),
                 str(len(s["readout"]["steps"])), ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    readout = ", ".join(map(str, s["readout"]["steps"]))
    length = f" of {ms(1, s['dt_ms'])}" if s.get("dt_ms") else ""
    if s.get("dt_ms"):
        readout = ", ".join(at_step(t, s["dt_ms"]) for t in s["readout"]["steps"])
    lines = [f"{s['name']}: input {'x'.join(map(str, s['input']))}, {s['steps']} steps{length}, "
             f"readout {_areas(s['readout']['area'])} at step {readout}", "", *table, "",
             f"parameters: {s['params']:,} ({s['params_unshared']:,} if no weights were shared)",
             f"FLOPs per image: {_count(s['flops'])} ({s['calls']} of {s['naive_calls']} edge calls run; "
             "silent and unread work is pruned)", "", "schedule:"]
    for entry in s["schedule"]:
        if not entry["updates"]:
            continue
        cells = entry.get("cells", {})
        parts = "; ".join(f"{area} <- {cells[area]}({', '.join(edges)})" if area in cells else
                          f"{area} <- {', '.join(edges)}" for area, edges in entry["updates"].items())
        lines.append(f"  step {entry['step']:>3}: {parts}  [{_count(entry['flops'])} FLOPs]")
    if any(e.startswith("*") for entry in s["schedule"] for edges in entry["updates"].values() for e in edges):
        lines.append("  (*: a modulating edge, which scales the drive by 1 + g(M))")
    return "\n".join(lines)


def specs_table(specs: dict[str, Any]) -> str:
    """A Markdown table of specs: areas, steps, parameters (and if unshared), FLOPs per image."""
    from .compiler import compile

    rows = ["| spec | input | areas | steps | parameters | if unshared | FLOPs/image |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, path in specs.items():
        s = summarize(compile(path))
        rows.append(f"| `{name}` | {'x'.join(map(str, s['input']))} | {len(s['areas'])} | {s['steps']} | "
                    f"{s['params']:,} | {s['params_unshared']:,} | {_count(s['flops'])} |")
    return "\n".join(rows)
