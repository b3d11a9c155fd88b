"""Backward masking: how long must a digit be shown before a mask for a network to name it, and does
recurrence help? Two networks are trained on digits shown at every step: the digits network
(demo/frnn3-digits: V1, V2, V4 with lateral and feedback recurrence, 6 steps) and its feedforward
counterpart (the same areas and down-sampling edges, nothing else). Each is then shown the digit for the
first k steps and a mask after them (`input.stimulus: {show: {to: k-1}, then: mask}`, the trained weights
loaded into that spec), the mask a superposition of five other digits, and read out at step 6.

    python examples/backward_masking.py            # digits, on a CPU
"""

from __future__ import annotations

import torch
from _common import machine, options, run, spec_file, write_csv

from cortexgraph import build, load_spec
from cortexgraph.train.data import make_data, stacked
from cortexgraph.train.report import plot_lines


def networks() -> dict[str, dict]:
    recurrent = load_spec("demo/frnn3-digits").to_dict()
    recurrent |= {"name": "masking-recurrent", "inputs": {"V1": "every"}}
    feedforward = {**recurrent, "name": "masking-feedforward", "transitions": {"V1": {"V2": "down"},
                                                                             "V2": {"V4": "down"}}}
    return {"recurrent": recurrent, "feedforward": feedforward}


def masked(spec: dict, shown: int) -> dict:
    """The spec, showing its image for the first `shown` steps and a mask after them."""
    stimulus = {"show": {"to": shown - 1}, "then": "mask"} if shown <= spec["steps"] else None
    return {**spec, "input": {**spec["input"], **({"stimulus": stimulus} if stimulus else {})}}


@torch.no_grad()
def accuracy(model, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None) -> float:
    model.eval()
    logits = model(images, mask=mask) if mask is not None else model(images)
    return float((logits.argmax(1) == labels).float().mean())


def main() -> None:
    args = options("backward_masking", __doc__, epochs=6)
    args.size = None
    print(f"backward masking on {args.data}, {args.epochs} epochs ({machine()})")
    rows, curves = [], {}
    for label, spec in networks().items():
        run(spec_file(spec, args.out), args, label)
        trained = build(f"{args.out}/{label}/checkpoint.pt")
        data = make_data(args.data, trained.spec, args.data_dir, args.seed)
        images, labels = stacked(data.test)
        generator = torch.Generator().manual_seed(args.seed)
        pool = stacked(data.train)[0]
        mask = pool[torch.randint(len(pool), (len(images), 5), generator=generator)].mean(1)  # five digits
        mask = (mask - mask.mean()) / mask.std()  # as normalised as the digits
        steps = spec["steps"]
        accuracies = []
        for shown in range(1, steps + 2):
            model = build(masked(spec, shown))
            model.load_state_dict(trained.state_dict())
            accuracies.append(accuracy(model, images, labels, mask if shown <= steps else None))
            rows.append({"network": label, "steps_shown": shown, "accuracy": accuracies[-1]})
        curves[label] = (list(range(1, steps + 2)), [100 * a for a in accuracies])
        print(f"  {label}: accuracy by steps shown before the mask "
              + ", ".join(f"{k}: {100 * a:.1f}%" for k, a in zip(range(1, steps + 2), accuracies)))
    write_csv(f"{args.results}/backward_masking.csv", rows)
    plot = plot_lines(f"{args.results}/backward_masking.png", curves, "steps the digit is shown (then a mask; "
                      "7: no mask)", "test accuracy at step 6 (%)", "backward masking on digits", chance=10)
    print(f"wrote {plot}")


if __name__ == "__main__":
    main()
