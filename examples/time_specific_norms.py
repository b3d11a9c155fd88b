"""Question 2: does time-specific batch normalisation (one norm per step, TSBN) make a recurrent
ReLU network trainable, where one norm shared by all steps, or none, does not? Trains the 1-state
shared ResNet (a ReLU recurrent network) three ways and writes their training curves.

    python examples/time_specific_norms.py                # digits, on a CPU
    python examples/time_specific_norms.py --data cifar10 --epochs 60 --batch-size 128
"""

from pathlib import Path

from _common import machine, options, run, spec_file, write_csv

from cortexgraph import load_spec
from cortexgraph.train.report import plot_lines


def main() -> None:
    args = options("time_specific_norms", __doc__, epochs=8)
    # srn1-cifar, narrowed to 32 channels so that the CPU version runs in minutes
    spec = load_spec("liao2016/srn1-cifar").to_dict()
    spec.update(name="srn1-32")
    spec["prenet"] = [{"conv": {"out": 32, "kernel": 3}}]
    spec["areas"]["S"]["channels"] = 32
    path = spec_file(spec, args.out)
    print(f"TSBN vs shared BN vs none on {args.data}, {args.epochs} epochs ({machine()})")
    rows, train_curves, test_curves = [], {}, {}
    for norm, label in (("per_step", "TSBN (a norm per step)"), ("shared", "one norm for all steps"),
                        ("none", "no norm")):
        result = run(path, args, norm, norm=norm)
        for e in result["epochs"]:
            rows.append({"norm": norm, "epoch": e["epoch"], "train_loss": e["train_loss"],
                         "train_accuracy": e["train_acc"], "test_loss": e["test_loss"],
                         "test_accuracy": e["test_acc"]})
        epochs = [e["epoch"] for e in result["epochs"]]
        train_curves[label] = (epochs, [e["train_loss"] for e in result["epochs"]])
        test_curves[label] = (epochs, [100 * e["test_acc"] for e in result["epochs"]])
    write_csv(f"{args.results}/time_specific_norms.csv", rows)
    for name, curves, ylabel in (("train_loss", train_curves, "training loss"),
                                 ("test_accuracy", test_curves, "test accuracy (%)")):
        plot = plot_lines(Path(args.results) / f"time_specific_norms_{name}.png", curves, "epoch", ylabel,
                          "normalisation in a recurrent ReLU network",
                          chance=10 if name == "test_accuracy" else None)
        print(f"wrote {plot}")
    for label, (_, accuracy) in test_curves.items():
        print(f"{label:>24}: final test accuracy {accuracy[-1]:.1f}%")


if __name__ == "__main__":
    main()
