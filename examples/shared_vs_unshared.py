"""Question 1: does sharing a ResNet's weights across its blocks keep its accuracy with far fewer
parameters? Trains the multi-stage CIFAR ResNet with weights shared within each stage, and its
unshared twin (ResNet-56), the same way; writes their parameters and accuracies.

    python examples/shared_vs_unshared.py                 # digits, on a CPU
    python examples/shared_vs_unshared.py --data cifar10 --epochs 100 --batch-size 128   # on a GPU
"""

from _common import compare, machine, options


def main() -> None:
    args = options("shared_vs_unshared", __doc__, epochs=8)
    print(f"shared vs unshared on {args.data}, {args.epochs} epochs ({machine()})")
    compare(args, "shared_vs_unshared", "weights shared within stages vs unshared",
            {label: (f"liao2016/resnet-cifar-{label}", {}) for label in ("shared", "unshared")}, "model")


if __name__ == "__main__":
    main()
