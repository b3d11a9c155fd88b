"""Early exit: how much compute does stopping each image at a confident step save, and at what cost in
accuracy? The digits network (demo/frnn3-digits: V1, V2, V4, 6 steps) trained two ways: with a loss at
every step signal reaches V4 (2 to 6, `readout.loss: uniform`: deep supervision in time), and, as
bundled, with the loss at the last step only. Each is then evaluated with early exit
(`model(x, exit_threshold=p)`) at a range of thresholds: accuracy, mean exit step, and FLOPs per image
against the full unroll (`cortexgraph evaluate` prints the same for one model).

    python examples/early_exit.py                # digits, on a CPU
"""

from __future__ import annotations

import torch
from _common import machine, options, run, spec_file, write_csv

from cortexgraph import build, load_spec
from cortexgraph.evaluate import evaluate_exits
from cortexgraph.train.data import make_data
from cortexgraph.train.report import plot_lines

THRESHOLDS = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999]


def every_step(spec: dict) -> dict:
    """The spec read out, and trained, at every step from its readout area's arrival."""
    first = build(spec).plan.arrival[spec["readout"]["area"]]
    readout = {**spec["readout"], "step": list(range(first, spec["steps"] + 1)), "loss": "uniform"}
    return {**spec, "name": f"{spec['name']}-every-step", "readout": readout}


def main() -> None:
    args = options("early_exit", __doc__, epochs=6)
    args.size = None  # the digits spec is at the digits' size
    base = load_spec("demo/frnn3-digits").to_dict()
    print(f"early exit on {args.data}, {args.epochs} epochs ({machine()})")
    rows, curves = [], {}
    for label, spec in (("loss at every step", every_step(base)), ("loss at the last step", base)):
        result = run(spec_file(spec, args.out), args, label)
        model = build(f"{args.out}/{label}/checkpoint.pt")
        test = make_data(args.data, model.spec, args.data_dir, args.seed).test
        device = "cuda:0" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
        exits = evaluate_exits(model, test, THRESHOLDS, device=device)
        for r in exits:
            rows.append({"training": label, "threshold": "full" if r.threshold is None else r.threshold,
                         "accuracy": r.accuracy, "mean_exit_step": r.mean_exit_step,
                         "mflops_per_image": r.flops_per_image / 1e6, "flops_saved": r.flops_saved})
            name = "full run" if r.threshold is None else f"p = {r.threshold:g}"
            print(f"  {label}, {name}: accuracy {100 * r.accuracy:.1f}%, mean exit step {r.mean_exit_step:.2f}, "
                  f"{r.flops_per_image / 1e6:.1f}M FLOPs per image ({100 * r.flops_saved:.0f}% saved)")
        early = [r for r in exits if r.threshold is not None]
        curves[label] = ([r.flops_per_image / 1e6 for r in early], [100 * r.accuracy for r in early])
        print(f"  {label}: test accuracy {100 * result['test_acc']:.1f}% after training")
    write_csv(f"{args.results}/early_exit.csv", rows)
    plot = plot_lines(f"{args.results}/early_exit.png", curves, "MFLOPs per image (early exit)",
                      "test accuracy (%)", "early exit on digits: accuracy against compute",
                      chance=10)
    print(f"wrote {plot}")


if __name__ == "__main__":
    main()
