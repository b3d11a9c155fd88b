"""Feedback that can inhibit vs feedback that can only excite: the same BT network (the structure of
`examples/blt_variants.py`) with its top-down edge linear (a signed contribution, which can lower V2's
drive) or followed by a ReLU (non-negative: it can only add). Same weights' shapes, same parameters;
each trained to read out at its last step and read out at every step.

    python examples/inhibitory_feedback.py                 # digits, on a CPU
"""

from _common import by_step, machine, options, report_by_step, run, spec_file
from blt_variants import STEPS, blt

from cortexgraph import compile


def main() -> None:
    args = options("inhibitory_feedback", __doc__, epochs=8)
    size, channels = (16, 1) if args.data == "digits" else (32, 3)
    args.size = None
    print(f"signed vs excitatory-only feedback on {args.data}, {args.epochs} epochs ({machine()})")
    rows = []
    for label, signed in (("signed (can inhibit)", True), ("excitatory only (ReLU)", False)):
        spec = blt(16, False, True, size, channels, signed_feedback=signed)
        spec["name"] += "-signed" if signed else "-excitatory"
        result = run(spec_file(spec, args.out), args, spec["name"])
        rows.append({"feedback": label, "parameters": compile(spec).size.parameters, **by_step(result),
                     "seconds": round(result["wall_seconds"], 1)})
    report_by_step(args, "inhibitory_feedback", f"top-down feedback that can inhibit or only excite (trained at "
                   f"step {STEPS})", "feedback", rows, STEPS)

if __name__ == "__main__":
    main()
