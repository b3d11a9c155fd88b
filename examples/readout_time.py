"""Question 3: how does accuracy grow with readout time (unroll depth)? Trains one 3-state network
reading out at its last step, then reads its test accuracy at every step in one pass per batch.

    python examples/readout_time.py                       # digits, on a CPU
    python examples/readout_time.py --data cifar10 --epochs 60 --batch-size 128
"""

from _common import machine, options, run, write_csv

from cortexgraph.train.report import plot_lines


def main() -> None:
    args = options("readout_time", __doc__, epochs=8)
    spec = "demo/frnn3-digits" if args.data == "digits" else "liao2016/frnn3-cifar"
    if args.data == "digits":
        args.size = None  # the demo spec is the digits' own size
    print(f"accuracy vs readout step: {spec} on {args.data}, {args.epochs} epochs ({machine()})")
    result = run(spec, args, "frnn3", steps=8)
    anytime = sorted(result["anytime"].items())
    write_csv(f"{args.out}/readout_time.csv", [{"step": t, "test_accuracy": a} for t, a in anytime])
    plot = plot_lines(f"{args.out}/readout_time.png", {spec: ([t for t, _ in anytime], [100 * a for _, a in anytime])},
                      "readout step (unroll depth)", "test accuracy (%)", "accuracy vs readout time (trained at 8)",
                      marks=(8,))
    print(f"wrote {plot}")
    print("  ".join(f"t={t}: {100 * a:.1f}%" for t, a in anytime))


if __name__ == "__main__":
    main()
