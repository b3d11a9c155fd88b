"""Question 5: in the multi-state fully recurrent networks, what does sharing weights across time cost?
Trains the 3-state network with one set of weights per transition for all steps (share: time) and with
a fresh set at every step (share: none), the same way; writes their parameters and accuracies.

    python examples/frnn_shared_vs_unshared.py            # digits, on a CPU
    python examples/frnn_shared_vs_unshared.py --data cifar10 --epochs 60 --batch-size 128
"""

from _common import compare, machine, options


def main() -> None:
    args = options("frnn_shared_vs_unshared", __doc__, epochs=8)
    spec = "demo/frnn3-digits" if args.data == "digits" else "liao2016/frnn3-cifar"
    if args.data == "digits":
        args.size = None  # the demo spec is the digits' own size
    print(f"a 3-state network, shared vs unshared across time, on {args.data}, {args.epochs} epochs ({machine()})")
    compare(args, "frnn_shared_vs_unshared", "3 states: weights shared across time or not",
            {share: (spec, {"share": share}) for share in ("time", "none")}, "share")


if __name__ == "__main__":
    main()
