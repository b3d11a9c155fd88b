"""Which reading of Liao & Poggio (2016) gives the parameter counts that accounts of the paper quote?

Secondary accounts (not the paper's text, which we could not obtain) give about 187k parameters shared vs
778k unshared on CIFAR-10, and 8.4M vs 29M on ImageNet. The paper's description leaves open which
transitions carry convs, the widths, the unroll depth and what the unshared model unshares. This script
counts every reading in a grid of those choices (from the spec alone: nothing is built, no torch needed)
and writes them all with their distance to the quoted figures, and a plot of the whole grid against them.

    python examples/parameter_search.py          # about 15 s on one core; readings.csv and readings.png

Families searched:
- `frnn`: k-state fully recurrent networks (k = 1-4; areas halving in size), a self op (residual or
  basic), a bottom-up op (3x3 or 1x1 strided conv, or a residual or basic block), a top-down op (none,
  nearest upsampling + 3x3 or 1x1 conv, or a 2x2 transposed conv), T steps; CIFAR widths from 8-64
  doubling or constant, ImageNet widths ResNet-18's after its stem.
- `resnet`: He et al.'s CIFAR ResNet (3 stages, n blocks each; 16 or 32 channels first), weights shared
  within a stage or not; the stage transitions a block, or a 3x3 or 1x1 strided conv.
Unshared, two ways: a fresh set of weights for every call the pruned Plan makes (`pruned`: what
`cortexgraph compile` reports), or for every edge at every step its source has signal (`every call`).
The distance of a reading is the larger of its two relative errors.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path
from typing import Any

import cortexgraph
from cortexgraph import SpecError

TARGETS = {"cifar": (187e3, 778e3), "imagenet": (8.4e6, 29e6)}
NAMES = ["V1", "V2", "V4", "IT"]
SELF = ["residual", "basic"]
UP = [None, "up", {"up": {"kernel": 1}}, {"up": {"mode": "transpose"}}]
DOWN = ["down", {"down": {"kernel": 1}}, "residual", "basic"]


def frnn(states: int, widths: tuple[int, ...], self_op: Any, up: Any, down: Any, steps: int, imagenet: bool) -> dict:
    size = 56 if imagenet else 32
    rows = {}
    for i, area in enumerate(NAMES[:states]):
        row: dict[str, Any] = {area: self_op}
        if i + 1 < states:
            row[NAMES[i + 1]] = down
        if i and up is not None:
            row[NAMES[i - 1]] = up
        rows[area] = row
    prenet = ([{"conv": {"out": widths[0], "kernel": 7, "stride": 2}}, {"maxpool": {"kernel": 3, "stride": 2,
                                                                                    "padding": 1}}]
              if imagenet else [{"conv": {"out": widths[0]}}])
    return {"cortexgraph": 1, "name": "frnn", "input": {"channels": 3, "size": 224 if imagenet else 32},
            "prenet": prenet, "areas": {a: {"channels": widths[i], "size": size >> i}
                                        for i, a in enumerate(NAMES[:states])},
            "inputs": {"V1": "once"}, "steps": steps, "transitions": rows,
            "readout": {"area": NAMES[states - 1], "head": {"classes": 1000 if imagenet else 10}}}


def resnet(blocks: int, base: int, entry: Any, share: str) -> dict:
    """He et al.'s CIFAR ResNet as a schedule: stage s's self block `blocks` times (stage 1) or `blocks - 1`
    times after its entry transition (stages 2, 3)."""
    phases, step = [], 1
    for stage in range(3):
        area = f"S{stage + 1}"
        if stage:
            phases.append({"at": step, "transitions": {f"S{stage}": {area: entry}}})
            step += 1
        runs = blocks if stage == 0 else blocks - 1
        phases.append({"at": {"from": step, "to": step + runs - 1}, "transitions": {area: {area: "basic"}}})
        step += runs
    return {"cortexgraph": 1, "name": "resnet", "input": {"channels": 3, "size": 32},
            "prenet": [{"conv": {"out": base}}],
            "areas": {f"S{i + 1}": {"channels": base << i, "size": 32 >> i} for i in range(3)},
            "inputs": {"S1": "once"}, "steps": step - 1, "defaults": {"share": share}, "schedule": phases,
            "readout": {"area": "S3", "head": {"classes": 10}}}


def counts(spec: dict) -> tuple[int, int, int] | None:
    """(shared, unshared over the pruned calls, unshared over every call), or None if the reading is invalid."""
    try:
        plan = cortexgraph.compile(spec)
    except SpecError:
        return None
    return plan.size.parameters, plan.unshared.parameters, plan.variant(None, "none").unshared.parameters


def readings() -> list[dict[str, Any]]:
    rows = []
    cifar_widths = [(8, 16, 32, 64), (16, 32, 64, 128), (32, 64, 128, 256), (64, 64, 64, 64)]
    for target, widthsets, steps in (("cifar", cifar_widths, range(2, 21)),
                                     ("imagenet", [(64, 128, 256, 512)], range(2, 17))):
        for states, widths, self_op, up, down, t in itertools.product(range(1, 5), widthsets, SELF, UP, DOWN, steps):
            if states == 1 and (up is not None or down != "down"):
                continue  # one state has no transitions between areas
            found = counts(frnn(states, widths, self_op, up, down, t, target == "imagenet"))
            if found:
                rows.append({"target": target, "family": "frnn", "states": states, "widths": "/".join(
                    map(str, widths[:states])), "self": self_op, "up": _op(up), "down": _op(down), "steps": t,
                             "shared": found[0], "unshared_pruned": found[1], "unshared_every_call": found[2]})
    for blocks, base, entry in itertools.product(range(3, 21), (16, 32), ["basic", "down", {"down": {"kernel": 1}}]):
        shared, unshared = counts(resnet(blocks, base, entry, "time")), counts(resnet(blocks, base, entry, "none"))
        if shared and unshared:
            rows.append({"target": "cifar", "family": "resnet", "states": 3, "widths": f"{base}/{2 * base}/{4 * base}",
                         "self": "basic", "up": "-", "down": _op(entry), "steps": 3 * blocks - 1,
                         "shared": shared[0], "unshared_pruned": unshared[0], "unshared_every_call": unshared[0]})
    for row in rows:
        shared, unshared = TARGETS[row["target"]]
        for kind in ("pruned", "every_call"):
            row[f"distance_{kind}"] = round(max(abs(row["shared"] / shared - 1),
                                                abs(row[f"unshared_{kind}"] / unshared - 1)), 4)
    return rows


def plot(rows: list[dict[str, Any]], path: str) -> None:
    """Every reading's shared against unshared count (the pruned Plan's), one panel per data set, with the
    quoted pair marked: how far the whole grid lies from it, not only its best reading."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TARGETS), figsize=(10, 4.5))
    for ax, (target, (shared, unshared)) in zip(axes, TARGETS.items()):
        for family, colour in (("frnn", "tab:blue"), ("resnet", "tab:orange")):
            mine = [r for r in rows if r["target"] == target and r["family"] == family]
            if mine:
                ax.scatter([r["shared"] for r in mine], [r["unshared_pruned"] for r in mine], s=6, alpha=0.4,
                           color=colour, label=f"{family} readings ({len(mine)})")
        ax.scatter([shared], [unshared], marker="*", s=250, color="black", label="quoted", zorder=3)
        ax.set(xscale="log", yscale="log", xlabel="parameters, shared", ylabel="parameters, unshared (pruned)",
               title=f"{target}: readings of Liao & Poggio (2016)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _op(op: Any) -> str:
    if op is None:
        return "none"
    if isinstance(op, str):
        return op
    (name, params), = op.items()
    return name + "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/examples/parameter_search")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows = readings()
    with open(f"{args.out}/readings.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, f"{args.out}/readings.png")
    print(f"{len(rows)} readings; wrote {args.out}/readings.csv and readings.png")
    for target, (shared, unshared) in TARGETS.items():
        print(f"\n{target}: closest to {shared:,.0f} shared / {unshared:,.0f} unshared")
        for family in ("frnn", "resnet"):
            for kind in ("pruned", "every_call"):
                mine = [r for r in rows if r["target"] == target and r["family"] == family]
                if not mine:
                    continue
                best = min(mine, key=lambda r: r[f"distance_{kind}"])
                print(f"  {family:6s} unshared {kind:10s}: {100 * best[f'distance_{kind}']:5.1f}% off: "
                      f"{best['shared']:,} / {best[f'unshared_{kind}']:,}  {_describe(best)}")
    # One reading for both data sets: the same ops and the same meaning of "unshared".
    joint = []
    for kind in ("pruned", "every_call"):
        for self_op, up, down in itertools.product(SELF, map(_op, UP), map(_op, DOWN)):
            best = {}
            for target in TARGETS:
                mine = [r for r in rows if r["target"] == target and r["family"] == "frnn" and
                        (r["self"], r["up"], r["down"]) == (self_op, up, down) and r["states"] > 1]
                if mine:
                    best[target] = min(mine, key=lambda r: r[f"distance_{kind}"])
            if len(best) == 2:
                joint.append((max(b[f"distance_{kind}"] for b in best.values()), kind, best))
    distance, kind, best = min(joint, key=lambda j: j[0])
    print(f"\none reading for both (the same ops; unshared {kind}): {100 * distance:.1f}% off at worst")
    for target, row in best.items():
        print(f"  {target}: {row['shared']:,} / {row[f'unshared_{kind}']:,}  {_describe(row)}")


def _describe(row: dict[str, Any]) -> str:
    if row["family"] == "resnet":
        return f"CIFAR ResNet, widths {row['widths']}, {row['steps']} steps, stage entries {row['down']}"
    return (f"{row['states']} states, widths {row['widths']}, self {row['self']}, up {row['up']}, "
            f"down {row['down']}, {row['steps']} steps")


if __name__ == "__main__":
    main()
