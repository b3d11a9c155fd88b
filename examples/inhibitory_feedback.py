"""Feedback that can inhibit vs feedback that can only excite: the same BT network (the structure of
`examples/blt_variants.py`) with its top-down edge linear (a signed contribution, which can lower V2's
drive) or followed by a ReLU (non-negative: it can only add). Same weights' shapes, same parameters;
each trained to read out at its last step and read out at every step.

    python examples/inhibitory_feedback.py                 # digits, on a CPU
"""

from _common import machine, options, run, spec_file, write_csv
from blt_variants import STEPS, blt

from cortexgraph import compile
from cortexgraph.train.report import plot_lines


def main() -> None:
    args = options("inhibitory_feedback", __doc__, epochs=8)
    size, channels = (16, 1) if args.data == "digits" else (32, 3)
    args.size = None
    print(f"signed vs excitatory-only feedback on {args.data}, {args.epochs} epochs ({machine()})")
    rows, curves = [], {}
    for label, signed in (("signed (can inhibit)", True), ("excitatory only (ReLU)", False)):
        spec = blt(16, False, True, size, channels, signed_feedback=signed)
        spec["name"] += "-signed" if signed else "-excitatory"
        params = compile(spec).size.parameters
        result = run(spec_file(spec, args.out), args, spec["name"])
        anytime = result["anytime"]
        rows.append({"feedback": label, "parameters": params, **{f"step_{t}": anytime[t] for t in sorted(anytime)},
                     "seconds": round(result["wall_seconds"], 1)})
        curves[label] = (sorted(anytime), [100 * anytime[t] for t in sorted(anytime)])
    write_csv(f"{args.results}/inhibitory_feedback.csv", rows)
    plot = plot_lines(f"{args.results}/inhibitory_feedback.png", curves, "readout step", "test accuracy (%)",
                      f"top-down feedback that can inhibit or only excite (trained at step {STEPS})",
                      marks=(STEPS,), chance=10)
    print(f"wrote {plot}")
    for r in rows:
        steps = ", ".join(f"{100 * v:.1f}" for k, v in r.items() if k.startswith("step_"))
        print(f"{r['feedback']:>24} ({r['parameters']:,} parameters): accuracy by step {steps}")


if __name__ == "__main__":
    main()
