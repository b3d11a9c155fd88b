"""BLT vs B vs BL vs BT at a matched parameter budget: does recurrence within an area (lateral, L) or from
the area above (top-down, T) help, and from which step on? Each network is the BLT structure of the
bundled `blt/*` specs at the digits' size (16 pixels, three areas, linear edges, layer norms, a bottom-up
sweep inside every step), widened until it holds about the same number of parameters; each is trained to
read out at its last step and read out at every step in one pass (`model(x, readout="all")`).

    python examples/blt_variants.py                        # digits, on a CPU
    python examples/blt_variants.py --data cifar10 --epochs 60 --batch-size 128
"""

from _common import by_step, machine, options, report_by_step, run, spec_file

from cortexgraph import compile

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
    rows = []
    for label, lateral, topdown in (("B", False, False), ("BL", True, False), ("BT", False, True),
                                    ("BLT", True, True)):
        spec = matched(lateral, topdown, budget, size, channels)
        result = run(spec_file(spec, args.out), args, label)
        rows.append({"network": label, "width": spec["prenet"][0]["conv"]["out"],
                     "parameters": compile(spec).size.parameters, **by_step(result),
                     "seconds": round(result["wall_seconds"], 1)})
    report_by_step(args, "blt_variants", f"B, BL, BT, BLT at about {budget / 1e3:.0f}k parameters (trained at "
                   f"step {STEPS})", "network", rows, STEPS)

if __name__ == "__main__":
    main()
