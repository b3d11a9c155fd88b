"""examples/README.md's tables, made from the CSVs the scripts wrote to examples/results/digits.

    python examples/tables.py            # rewrite the tables in examples/README.md
    python examples/tables.py --check    # exit 1 if they differ from the CSVs (tests/test_docs.py runs this)
    python examples/tables.py --sweeps sweeps   # first copy in the example sweeps' reports found there:
                                                # each sweeps/NAME/configurations.csv to results/digits/sweeps

Each table sits between `<!-- table: NAME -->` and `<!-- end of table -->`; the prose around it is written
by hand from the same numbers.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "digits"
README = HERE / "README.md"


def _rows(name: str) -> list[dict[str, str]]:
    with open(RESULTS / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def _pct(value: str) -> str:
    return f"{100 * float(value):.1f}%"


def _table(header: list[str], rows: list[list[str]], right: int = 1) -> str:
    align = ["---"] * right + ["---:"] * (len(header) - right)
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, align, *rows])


def shared_vs_unshared() -> str:
    return _table(["model", "parameters", "test accuracy", "best epoch's"],
                  [[f"{r['model']} (`{r['spec']}`)", f"{int(r['parameters']):,}", _pct(r["test_accuracy"]),
                    _pct(r["best_test_accuracy"])] for r in _rows("shared_vs_unshared")])


def time_specific_norms() -> str:
    last: dict[str, dict[str, str]] = {}
    for row in _rows("time_specific_norms"):
        last[row["norm"]] = row  # rows run in epoch order: the last one of each norm is its final epoch
    names = {"per_step": "TSBN (a norm per step)", "shared": "one norm for all steps", "none": "none"}
    return _table(["normalisation", "final train accuracy", "final test accuracy"],
                  [[names[n], _pct(r["train_accuracy"]), _pct(r["test_accuracy"])] for n, r in last.items()])


def readout_time() -> str:
    rows = _rows("readout_time")
    return _table(["readout step", *(r["step"] for r in rows)],
                  [["one model trained at 8, read out early", *(_pct(r["read_out_early"]) for r in rows)],
                   ["a model trained for this step", *(_pct(r["trained_for_this_step"])
                                                      if r["trained_for_this_step"] else "" for r in rows)]])


def states() -> str:
    return _table(["states", "width", "parameters", "test accuracy", "training time"],
                  [[r["states"], r["width"], f"{int(r['parameters']):,}", _pct(r["test_accuracy"]),
                    f"{float(r['seconds']):.0f} s"] for r in _rows("states")], right=0)


def frnn_shared_vs_unshared() -> str:
    return _table(["weights", "parameters", "test accuracy", "best epoch's"],
                  [[f"`share: {r['share']}`", f"{int(r['parameters']):,}", _pct(r["test_accuracy"]),
                    _pct(r["best_test_accuracy"])] for r in _rows("frnn_shared_vs_unshared")])


def _by_step(name: str, label: str) -> str:
    rows = _rows(name)
    steps = [k for k in rows[0] if k.startswith("step_")]
    return _table([label, "parameters", *(f"step {k.removeprefix('step_')}" for k in steps)],
                  [[r[label], f"{int(r['parameters']):,}", *(_pct(r[k]) for k in steps)] for r in rows])


def blt_variants() -> str:
    return _by_step("blt_variants", "network")


def inhibitory_feedback() -> str:
    return _by_step("inhibitory_feedback", "feedback")


def early_exit() -> str:
    def name(threshold: str) -> str:
        return "full run" if threshold == "full" else f"p = {float(threshold):g}"

    return _table(["training", "exit", "test accuracy", "mean exit step", "MFLOPs per image", "saved"],
                  [[r["training"], name(r["threshold"]), _pct(r["accuracy"]), f"{float(r['mean_exit_step']):.2f}",
                    f"{float(r['mflops_per_image']):.1f}", f"{100 * float(r['flops_saved']):.1f}%"]
                   for r in _rows("early_exit")], right=2)


def backward_masking() -> str:
    rows = _rows("backward_masking")
    shown = list(dict.fromkeys(r["steps_shown"] for r in rows))
    names = list(dict.fromkeys(r["network"] for r in rows))
    by = {(r["network"], r["steps_shown"]): r["accuracy"] for r in rows}
    last = shown[-1]
    return _table(["steps shown, then the mask", *(f"{k}" if k != last else f"{k} (no mask)" for k in shown)],
                  [[n, *(_pct(by[(n, k)]) for k in shown)] for n in names])


def rsa() -> str:
    readout = "V4.t6"  # what the head reads
    with_readout = {}
    for r in _rows("rsa"):
        if readout in (r["a"], r["b"]):
            with_readout[r["a"] if r["b"] == readout else r["b"]] = float(r["spearman"])
    with_readout[readout] = 1.0
    areas = list(dict.fromkeys(name.split(".")[0] for name in with_readout))
    steps = sorted({int(name.split(".t")[1]) for name in with_readout})
    return _table(["area", *(f"step {t}" for t in steps)],
                  [[area, *(f"{with_readout[f'{area}.t{t}']:+.2f}" if f"{area}.t{t}" in with_readout else ""
                            for t in steps)] for area in areas])


def sweep(name: str) -> str:
    """A sweep's configurations (`cortexgraph sweep report` wrote them; copied to results/digits/sweeps): what
    varied, the size objective, and the test accuracy's mean ± standard deviation over the seeds."""
    rows = _rows(f"sweeps/{name}")
    varied = list(rows[0])[:list(rows[0]).index("seeds")]
    sizes = [k.removesuffix(" mean") for k in rows[0] if k in ("parameters mean", "flops mean")]

    def shown(key: str, value: str) -> str:
        return Path(value).stem if key == "spec" else f"`{value}`"

    def size(key: str, value: str) -> str:
        return f"{int(float(value)):,}" if key == "parameters" else f"{float(value) / 1e6:.1f}"

    header = [*varied, *("MFLOPs per image" if k == "flops" else k for k in sizes), "test accuracy", "seeds"]
    return _table(header, [[*(shown(k, r[k]) for k in varied), *(size(k, r[f"{k} mean"]) for k in sizes),
                            f"{100 * float(r['accuracy mean']):.1f}% ± {100 * float(r['accuracy sd']):.1f}",
                            r["seeds"]] for r in rows], right=len(varied))


SWEEPS = ("shared-vs-unshared", "time-specific-norms", "readout-time", "states", "blt-variants", "cell-kinds")
TABLES = {f.__name__: f for f in (shared_vs_unshared, time_specific_norms, readout_time, states,
                                  frnn_shared_vs_unshared, blt_variants, inhibitory_feedback, early_exit,
                                  backward_masking, rsa)}
TABLES.update({f"sweep_{name.replace('-', '_')}": (lambda name=name: sweep(name)) for name in SWEEPS})


def render(text: str) -> str:
    def replace(match: re.Match) -> str:
        return f"{match[1]}{TABLES[match[2]]()}\n{match[3]}"

    # (the nearest end marker, with nothing between them too: a table not made yet must not swallow the next)
    return re.sub(r"(<!-- table: (\w+) -->\n)(?:.*?\n)??(<!-- end of table -->)", replace, text, flags=re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the tables are current")
    parser.add_argument("--sweeps", help="a folder of sweep folders whose reports (configurations.csv) to copy in")
    args = parser.parse_args()
    for name in SWEEPS if args.sweeps else ():
        report = Path(args.sweeps) / name / "configurations.csv"
        if report.is_file():
            (RESULTS / "sweeps").mkdir(exist_ok=True)
            (RESULTS / "sweeps" / f"{name}.csv").write_text(report.read_text())
            print(f"copied {report}")
    text = README.read_text()
    new = render(text)
    if args.check:
        sys.exit(0 if new == text else "examples/README.md's tables differ from the CSVs: run examples/tables.py")
    README.write_text(new)
    print(f"wrote the tables of {README}")


if __name__ == "__main__":
    main()
