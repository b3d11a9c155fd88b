"""Question 3: how does accuracy grow with readout time (unroll depth)? Two ways:

- one 3-state network trained to read out at its last step (8), then read out at every step in one pass
  per batch (`model(x, readout="all")`): how early a model trained for step 8 can answer;
- one network trained per readout time T (steps=T, T from the first step signal reaches the readout area
  to 8): how well a model trained to answer at T does.

    python examples/readout_time.py                       # digits, on a CPU
    python examples/readout_time.py --data cifar10 --epochs 60 --batch-size 128
"""

from _common import machine, options, run, write_csv

from cortexgraph import analyze, load_spec
from cortexgraph.train.report import plot_lines

LAST = 8


def main() -> None:
    args = options("readout_time", __doc__, epochs=8)
    spec = "demo/frnn3-digits" if args.data == "digits" else "liao2016/frnn3-cifar"
    if args.data == "digits":
        args.size = None  # the demo spec is the digits' own size
    first = analyze(load_spec(spec)).arrival[load_spec(spec).readout.area]
    print(f"accuracy vs readout step: {spec} on {args.data}, {args.epochs} epochs ({machine()})")
    last = run(spec, args, f"trained-at-{LAST}", steps=LAST)
    anytime = last["anytime"]
    per_step = {t: run(spec, args, f"trained-at-{t}", steps=t)["test_acc"] for t in range(first, LAST)}
    per_step[LAST] = last["test_acc"]
    steps = sorted(anytime)
    rows = [{"step": t, "read_out_early": anytime[t], "trained_for_this_step": per_step.get(t, "")} for t in steps]
    write_csv(f"{args.results}/readout_time.csv", rows)
    curves = {f"one model trained at {LAST}, read out at each step": (steps, [100 * anytime[t] for t in steps]),
              "one model per readout step": (sorted(per_step), [100 * per_step[t] for t in sorted(per_step)])}
    plot = plot_lines(f"{args.results}/readout_time.png", curves, "readout step (unroll depth)",
                      "test accuracy (%)", "accuracy vs readout time", marks=(LAST,), chance=10)
    print(f"wrote {plot}")
    for row in rows:
        trained = row["trained_for_this_step"]
        print(f"t={row['step']}: read out early {100 * row['read_out_early']:.1f}%"
              + (f", trained for it {100 * trained:.1f}%" if trained != "" else ""))


if __name__ == "__main__":
    main()
