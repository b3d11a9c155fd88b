"""BLT vs B vs BL vs BT at a matched parameter budget: does recurrence within an area (lateral, L) or from
the area above (top-down, T) help, and from which step on? Each network is the BLT structure of the
bundled `blt/*` specs at the digits' size (16 pixels, three areas, linear edges, layer norms, a bottom-up
sweep inside every step), widened until it holds about the same number of parameters; each is trained to
read out at its last step and read out at every step in one pass (`model(x, readout="all")`).

    python examples/blt_variants.py                        # digits, on a CPU
    python examples/blt_variants.py --data cifar10 --epochs 60 --batch-size 128
"""

from _common import machine, options, run, spec_file, write_csv

from cortexgraph import compile
from cortexgraph.train.report import plot_lines

AREAS = ["V1", "V2", "IT"]
STEPS = 5
LN = {"act": {"norm": {"kind": "layer", "time": "shared"}, "act": "relu"}}


def blt(width: int, lateral: bool, topdown: bool, size: int, channels: int, signed_feedback: bool = True) -> dict:
    """A BLT-style network: V1, V2, IT halving in size and doubling in width."""
    name = "b" + ("l" if lateral else "") + ("t" if topdown else "")
    areas = {a: {"channels": width << i, "size": size >> i, "cell": LN} for i, a in enumerate(AREAS)}
    edges = [{"from": AREAS[i], "to": AREAS[i + 1], "op": {"conv": {"pool_input": {"kernel": 2, "stride": 2}}},
              "delay": 0} for i in range(len(AREAS) - 1)]
    if lateral:
        edges += [{"from": a, "to": a, "op": "conv"} for a in AREAS[1:]]
    if topdown:
        edges += [{"from": AREAS[i + 1], "to": AREAS[i], "op": {"up": {"mode": "transpose", "kernel": 3}},
                   **({} if signed_feedback else {"activation": "relu"})} for i in range(1, len(AREAS) - 1)]
    return {"cortexgraph": 1, "name": f"{name}-w{width}", "input": {"channels": channels, "size": size},
            "prenet": [{"conv": {"out": width, "kernel": 3, "bias": True, "norm": False, "act": "relu"}}],
            "areas": areas, "inputs": {"V1": {"at": "every", "op": "conv"}}, "steps": STEPS,
            "defaults": {"norm": "none", "activation": "none"}, "edges": edges,
            "readout": {"area": "IT", "head": {"classes": 10}}}


def matched(lateral: bool, topdown: bool, budget: int, size: int, channels: int) -> dict:
    best = min(range(4, 97, 2), key=lambda w: abs(compile(blt(w, lateral, topdown, size, channels)).size.parameters
                                                  - budget))
    return blt(best, lateral, topdown, size, channels)


def main() -> None:
    args = options("blt_variants", __doc__, epochs=8)
    size, channels = (16, 1) if args.data == "digits" else (32, 3)
    args.size = None
    budget = compile(blt(16 if args.data == "digits" else 32, True, True, size, channels)).size.parameters
    print(f"B, BL, BT, BLT at about {budget:,} parameters on {args.data}, {args.epochs} epochs ({machine()})")
    rows, curves = [], {}
    for label, lateral, topdown in (("B", False, False), ("BL", True, False), ("BT", False, True),
                                    ("BLT", True, True)):
        spec = matched(lateral, topdown, budget, size, channels)
        params = compile(spec).size.parameters
        result = run(spec_file(spec, args.out), args, label)
        anytime = result["anytime"]
        rows.append({"network": label, "width": spec["prenet"][0]["conv"]["out"], "parameters": params,
                     **{f"step_{t}": anytime[t] for t in sorted(anytime)}, "seconds": round(result["wall_seconds"], 1)})
        curves[f"{label} ({params / 1e3:.0f}k)"] = (sorted(anytime), [100 * anytime[t] for t in sorted(anytime)])
    write_csv(f"{args.results}/blt_variants.csv", rows)
    plot = plot_lines(f"{args.results}/blt_variants.png", curves, "readout step", "test accuracy (%)",
                      f"B, BL, BT, BLT at about {budget / 1e3:.0f}k parameters (trained at step {STEPS})",
                      marks=(STEPS,), chance=10)
    print(f"wrote {plot}")
    for r in rows:
        steps = ", ".join(f"{100 * v:.1f}" for k, v in r.items() if k.startswith("step_"))
        print(f"{r['network']:>4} (width {r['width']}, {r['parameters']:,} parameters): accuracy by step {steps}")


if __name__ == "__main__":
    main()
