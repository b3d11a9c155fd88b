"""Question 4: do more states (areas) with feedback help, at a matched parameter budget? Builds
1-, 2-, 3- and 4-state fully recurrent networks, widening each until it holds about the same
number of parameters, trains them the same way and writes parameters and accuracy.

    python examples/states.py                             # digits, on a CPU
    python examples/states.py --data cifar10 --epochs 60 --batch-size 128 --budget 600000
"""

from _common import machine, options, run, spec_file, write_csv

import cortexgraph
from cortexgraph.train.report import plot_lines

NAMES = ["V1", "V2", "V4", "IT"]


def frnn(states: int, width: int, size: int, steps: int) -> dict:
    """A k-state network: areas halve in size and double in width; residual, down and up transitions."""
    areas = {NAMES[i]: {"channels": width * 2**i, "size": size // 2**i} for i in range(states)}
    transitions = {}
    for i, name in enumerate(NAMES[:states]):
        row = {name: "residual"}
        if i + 1 < states:
            row[NAMES[i + 1]] = "down"
        if i > 0:
            row[NAMES[i - 1]] = "up"
        transitions[name] = row
    return {"cortexgraph": 1, "name": f"frnn{states}-w{width}", "input": {"channels": 3, "size": size},
            "prenet": [{"conv": {"out": width, "kernel": 3}}], "areas": areas, "inputs": {"V1": "once"},
            "steps": steps, "transitions": transitions,
            "readout": {"area": NAMES[states - 1], "head": {"classes": 10}}}


def parameters(spec: dict) -> int:
    return cortexgraph.compile(spec).size.parameters  # counted from the spec: nothing is built


def matched(states: int, budget: int, size: int, steps: int) -> dict:
    best = min(range(4, 129, 2), key=lambda w: abs(parameters(frnn(states, w, size, steps)) - budget))
    return frnn(states, best, size, steps)


def main() -> None:
    args = options("states", __doc__, epochs=8)
    size = 16 if args.data == "digits" else 32
    budget = 150_000 if args.data == "digits" else 600_000
    args.size = None
    print(f"1-4 states at about {budget:,} parameters on {args.data}, {args.epochs} epochs ({machine()})")
    rows = []
    for states in (1, 2, 3, 4):
        spec = matched(states, budget, size, steps=6)
        result = run(spec_file(spec, args.out), args, spec["name"])
        rows.append({"states": states, "spec": spec["name"], "width": spec["prenet"][0]["conv"]["out"],
                     "parameters": parameters(spec), "test_accuracy": result["test_acc"],
                     "best_test_accuracy": max(e["test_acc"] for e in result["epochs"]),
                     "seconds": round(result["wall_seconds"], 1)})
    write_csv(f"{args.results}/states.csv", rows)
    plot = plot_lines(f"{args.results}/states.png", {"final": ([r["states"] for r in rows],
                      [100 * r["test_accuracy"] for r in rows])}, "states (areas)", "test accuracy (%)",
                      f"accuracy at about {budget / 1e3:.0f}k parameters", chance=10)
    print(f"wrote {plot}")
    for r in rows:
        print(f"{r['states']} states ({r['spec']}): {r['parameters']:,} parameters, test accuracy "
              f"{100 * r['test_accuracy']:.1f}%")


if __name__ == "__main__":
    main()
