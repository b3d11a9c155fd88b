"""Question 1: does sharing a ResNet's weights across its blocks keep its accuracy with far fewer
parameters? Trains the multi-stage CIFAR ResNet with weights shared within each stage, and its
unshared twin (ResNet-56), the same way; writes their parameters and accuracies.

    python examples/shared_vs_unshared.py                 # digits, on a CPU
    python examples/shared_vs_unshared.py --data cifar10 --epochs 100 --batch-size 128   # on a GPU
"""

from _common import machine, options, run, write_csv

from cortexgraph import build
from cortexgraph.train.report import plot_lines


def main() -> None:
    args = options("shared_vs_unshared", __doc__, epochs=8)
    print(f"shared vs unshared on {args.data}, {args.epochs} epochs ({machine()})")
    rows, curves = [], {}
    for label, spec in (("shared", "liao2016/resnet-cifar-shared"), ("unshared", "liao2016/resnet-cifar-unshared")):
        params = build(spec, size=args.size).plan.size.parameters
        result = run(spec, args, label)
        epochs = result["epochs"]
        rows.append({"model": label, "spec": spec, "parameters": params, "test_accuracy": result["test_acc"],
                     "best_test_accuracy": max(e["test_acc"] for e in epochs),
                     "seconds": round(result["wall_seconds"], 1)})
        curves[f"{label} ({params / 1e3:.0f}k parameters)"] = (
            [e["epoch"] for e in epochs], [100 * e["test_acc"] for e in epochs])
    write_csv(f"{args.results}/shared_vs_unshared.csv", rows)
    plot = plot_lines(f"{args.results}/shared_vs_unshared.png", curves, "epoch", "test accuracy (%)",
                      "weights shared within stages vs unshared", chance=10)
    print(f"wrote {plot}")
    for row in rows:
        print(f"{row['model']:>9}: {row['parameters']:>8,} parameters, test accuracy "
              f"{100 * row['test_accuracy']:.1f}% (best {100 * row['best_test_accuracy']:.1f}%)")


if __name__ == "__main__":
    main()
