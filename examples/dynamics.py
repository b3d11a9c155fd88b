"""Response dynamics of the digits network: how long the digit is shown, a second showing after a gap, and
its contrast, each run as `cortexgraph probe` runs it, on the demo network trained with the digit entering
V1 at every step (`inputs: {V1: every}`: with the demo's own `once`, nothing shown after step 0 reaches it,
and the probe says so). Steps are given a length (`dt_ms: 10`) so latencies read in ms.

    python examples/dynamics.py            # digits, on a CPU (about a minute)

Writes, for each experiment, the probe's CSVs, figure and manifest to examples/results/digits/dynamics/.
"""

from __future__ import annotations

from pathlib import Path

from _common import machine, options, run, spec_file

from cortexgraph import build, load_spec
from cortexgraph.experiments import experiment
from cortexgraph.probe import probe, write_probe
from cortexgraph.train.data import make_data, stacked


def main() -> None:
    args = options("dynamics", __doc__, epochs=6)
    args.size = None
    spec = load_spec("demo/frnn3-digits").to_dict() | {"name": "frnn3-every", "inputs": {"V1": "every"}, "dt_ms": 10}
    print(f"response dynamics on {args.data}, {args.epochs} epochs ({machine()})")
    run(spec_file(spec, args.out), args, "frnn3-every")
    checkpoint = f"{args.out}/frnn3-every/checkpoint.pt"
    model = build(checkpoint)
    data = make_data(args.data, model.spec, args.data_dir, args.seed)
    images, labels = stacked(data.test)
    results = Path(args.results) / "dynamics"
    for name in ("duration", "interval", "contrast"):
        result = probe(model, images, labels, experiment(name), seed=args.seed)
        about = {"model": checkpoint, "stimuli": {"data": data.name, "split": "test", "images": len(images)}}
        for path in write_probe(result, results, about, overwrite=True):
            print(f"wrote {path}")
        for row in result.summary():
            level = row[result.experiment.parameter]
            peaks = ", ".join(f"{a} {row[f'{a} peak']:.3f} at {row[f'{a} peak step'] * 10} ms" for a in result.areas)
            extra = (", second/first " + ", ".join(f"{a} {row[f'{a} second/first']:.2f}" for a in result.areas)
                     if name == "interval" else "")
            print(f"  {name} {level}: accuracy {100 * row['accuracy']:.1f}%; peak evoked {peaks}{extra}")


if __name__ == "__main__":
    main()
