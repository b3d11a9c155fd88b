"""Question 5: in the multi-state fully recurrent networks, what does sharing weights across time cost?
Trains the 3-state network with one set of weights per transition for all steps (share: time) and with
a fresh set at every step (share: none), the same way; writes their parameters and accuracies.

    python examples/frnn_shared_vs_unshared.py            # digits, on a CPU
    python examples/frnn_shared_vs_unshared.py --data cifar10 --epochs 60 --batch-size 128
"""

from _common import machine, options, run, write_csv

from cortexgraph import build
from cortexgraph.train.report import plot_lines


def main() -> None:
    args = options("frnn_shared_vs_unshared", __doc__, epochs=8)
    spec = "demo/frnn3-digits" if args.data == "digits" else "liao2016/frnn3-cifar"
    if args.data == "digits":
        args.size = None  # the demo spec is the digits' own size
    print(f"a 3-state network, shared vs unshared across time, on {args.data}, {args.epochs} epochs ({machine()})")
    rows, curves = [], {}
    for share in ("time", "none"):
        params = build(spec, share=share, size=args.size).plan.size.parameters
        result = run(spec, args, f"share-{share}", share=share)
        epochs = result["epochs"]
        rows.append({"share": share, "spec": spec, "parameters": params, "test_accuracy": result["test_acc"],
                     "best_test_accuracy": max(e["test_acc"] for e in epochs),
                     "seconds": round(result["wall_seconds"], 1)})
        curves[f"share: {share} ({params / 1e3:.0f}k parameters)"] = (
            [e["epoch"] for e in epochs], [100 * e["test_acc"] for e in epochs])
    write_csv(f"{args.results}/frnn_shared_vs_unshared.csv", rows)
    plot = plot_lines(f"{args.results}/frnn_shared_vs_unshared.png", curves, "epoch", "test accuracy (%)",
                      "3 states: weights shared across time or not", chance=10)
    print(f"wrote {plot}")
    for row in rows:
        print(f"share: {row['share']:>4}: {row['parameters']:>9,} parameters, test accuracy "
              f"{100 * row['test_accuracy']:.1f}% (best {100 * row['best_test_accuracy']:.1f}%)")


if __name__ == "__main__":
    main()
