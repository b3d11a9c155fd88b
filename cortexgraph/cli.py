"""The `cortexgraph` command.

A bad spec never shows a traceback: every problem is printed as
`file:line:col: path: message (hint)` and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from .errors import Problem, SpecError

EXIT_OK, EXIT_FAILED, EXIT_BAD_SPEC = 0, 1, 2


def _limits(pairs: list[str]):
    from .analysis import Limits

    limits = Limits()
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not value.isdigit():
            raise SystemExit(f"cortexgraph: --limit takes NAME=NUMBER, got {pair!r}")
        try:
            limits = limits.replace(**{name: int(value)})
        except ValueError as exc:
            raise SystemExit(f"cortexgraph: {exc}") from None
    return limits


def _check(target: str, limits, allow_imports: bool = False) -> tuple[object | None, list[Problem]]:
    """Load, analyse and plan one spec (its size is checked with its Plan): (plan or None, problems)."""
    from .compiler import compile

    try:
        plan = compile(target, limits=limits, allow_imports=allow_imports)
    except SpecError as exc:
        return None, exc.problems
    return plan, plan.warnings


SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def _spec_files(targets: list[str]) -> list[str]:
    """The specs named: files, bundled names, and every spec file in a folder (recursively, sorted)."""
    from pathlib import Path

    out = []
    for target in targets:
        folder = Path(target)
        if not folder.is_dir():
            out.append(target)
            continue
        found = sorted(str(p) for p in folder.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file())
        if not found:
            raise ValueError(f"{target} is a folder with no spec files ({', '.join(SPEC_SUFFIXES)})")
        out += found
    return out


def _arrival_line(plan) -> str:
    arrival = plan.arrival
    return ", ".join(f"{area} {'never' if t is None else t}" for area, t in arrival.items())


def cmd_validate(args: argparse.Namespace) -> int:
    limits = _limits(args.limit)
    report = []
    status = EXIT_OK
    try:
        targets = _spec_files(args.specs)
    except ValueError as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    for target in targets:
        plan, problems = _check(target, limits, args.allow_imports)
        if plan is None:
            status = EXIT_BAD_SPEC
        if args.json:
            entry = {"spec": target, "valid": plan is not None, "problems": [p.to_json() for p in problems]}
            if plan is not None:
                entry["summary"] = _summary(plan)
            report.append(entry)
            continue
        for problem in problems:
            print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)
        if plan is not None:
            spec = plan.spec
            print(f"{target}: valid: {spec.name}: {len(spec.areas)} areas, "
                  f"{sum(not e.is_input for e in plan.edges.values())} edges, {spec.steps} steps, "
                  f"{plan.size.parameters:,} parameters; signal reaches {_arrival_line(plan)}")
    if args.json:
        print(json.dumps(report, indent=2))
    return status


def _summary(plan) -> dict:
    spec = plan.spec
    return {"name": spec.name, "areas": {a: list(plan.shapes[a]) for a in spec.areas},
            "edges": list(plan.edges), "steps": spec.steps, "arrival": plan.arrival,
            "readout": {"area": spec.readout.written, "steps": list(spec.readout_steps)},
            "parameters": plan.size.parameters, "bytes": plan.size.bytes}


def cmd_compile(args: argparse.Namespace) -> int:
    import torch

    from .compiler import compile
    from .construct import construct
    from .flags import given
    from .model import CortexNet
    from .overrides import Overrides
    from .summary import format_summary, summarize

    plan = compile(args.spec, limits=_limits(args.limit), allow_imports=args.allow_imports,
                   **given(args, Overrides, SHOWN))
    for problem in plan.warnings:
        print(problem, file=sys.stderr)
    with torch.device("meta"):  # shapes, parameters and FLOPs need no weights, however big the model
        summary = summarize(CortexNet(plan))
    if args.export:
        from .export import export_program

        try:
            diff = export_program(construct(plan), args.export)
        except Exception as exc:  # export can fail inside torch for user ops; say so in one line
            print(f"cortexgraph: export to {args.export} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        summary["export"] = {"path": args.export, "max_difference": diff}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
        if args.export:
            print(f"\nexported to {args.export} (reloaded and checked: largest difference {diff:.1e})")
    return EXIT_OK


def cmd_draw(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .compiler import compile
    from .drawing import FORMATS, DrawError, TooBigToDraw, draw, format_of, render
    from .flags import given
    from .overrides import Overrides

    plan = compile(args.spec, allow_imports=args.allow_imports, **given(args, Overrides, SHOWN))
    spec = plan.spec
    fmt = format_of(args.output, args.format)
    if fmt not in FORMATS:
        print(f"cortexgraph: cannot write {fmt!r}: formats are {', '.join(FORMATS)} (from --format, or the "
              "output's suffix)", file=sys.stderr)
        return EXIT_BAD_SPEC
    output = args.output or f"{spec.name}-{args.view}.{fmt}"
    folder = Path(output).parent
    if Path(output).is_dir() or not folder.is_dir():
        why = (f"it is a folder; name a file in it, such as {Path(output) / f'{spec.name}-{args.view}.{fmt}'}"
               if Path(output).is_dir() else f"there is no folder {folder}")
        print(f"cortexgraph: cannot write {output}: {why}", file=sys.stderr)
        return EXIT_BAD_SPEC
    try:
        graph = draw(plan, view=args.view, max_elements=args.max_elements)
    except TooBigToDraw as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    try:
        render(graph, output, fmt)
    except DrawError as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {output} ({args.view} view of {spec.name})")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .flags import given
    from .train import DataError, TrainConfig, TrainingError, result_lines, train

    try:
        config = TrainConfig(**given(args, TrainConfig))
        result = train(config)
        if not config.progress and os.environ.get("RANK", "0") == "0":  # --quiet hides epochs, not the result
            print("\n".join(result_lines(result)))
    except SpecError:
        raise  # printed by main, located in the spec
    except (DataError, CheckpointError, ValueError) as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    except TrainingError as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _model_and_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model of `args.spec` (a checkpoint or a spec) and its data: `--data` and `--data-dir` where given,
    else the checkpoint's (its split seed too), else digits."""
    from .builder import build
    from .checkpoint import is_checkpoint_path, read_checkpoint
    from .train.data import make_data

    model = build(args.spec, allow_imports=args.allow_imports)
    settings = read_checkpoint(args.spec).get("settings", {}) if is_checkpoint_path(args.spec) else {}
    data = make_data(args.data or settings.get("data", "digits"), model.spec,
                     args.data_dir or settings.get("data_dir", "data"), settings.get("seed", 0))
    return model, data


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .checkpoint import CheckpointError
    from .evaluate import evaluate_exits, exit_table, rows_as_dicts
    from .train import DataError

    try:
        model, data = _model_and_data(args)
        rows = evaluate_exits(model, data.test, args.exit_threshold, args.batch_size, args.device)
    except (DataError, CheckpointError, ValueError) as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    print(f"{model.spec.name} on {data.name} (test split, {len(data.test):,} images)")
    print(exit_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows_as_dicts(rows), indent=2) + "\n")
    return EXIT_OK


def cmd_features(args: argparse.Namespace) -> int:
    import hashlib

    from torch.utils.data import Subset

    from .checkpoint import CheckpointError, is_checkpoint_path
    from .extract import write_features
    from .train import DataError

    try:
        model, data = _model_and_data(args)
        about: dict = {"model": args.spec}
        if is_checkpoint_path(args.spec):
            digest = hashlib.sha256()
            with open(args.spec, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            about["checkpoint_sha256"] = digest.hexdigest()
        split = data.test if args.split == "test" else data.train
        if args.limit is not None:
            split = Subset(split, range(min(args.limit, len(split))))
        about["stimuli"] = {"data": data.name, "split": args.split, "images": len(split)}
        out = write_features(model, split, args.at, args.out, None if args.pool == "none" else args.pool,
                             args.batch_size, args.device, about)
    except (DataError, CheckpointError, ValueError) as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    print(f"wrote the features of {len(split):,} images ({data.name}, {args.split} split) to {out}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_specs(args: argparse.Namespace) -> int:
    from .bundled import bundled_specs
    from .spec import load_spec

    if args.table:
        from .summary import specs_table

        print(specs_table(bundled_specs()))
        return EXIT_OK
    for name, path in bundled_specs().items():
        try:
            description = textwrap.shorten(load_spec(path).description or "", 72, placeholder="...")
        except SpecError:
            description = "(does not validate)"
        print(f"{name:32s} {description}")
    return EXIT_OK


SHOWN = ("steps", "classes", "share", "norm", "size")  # the overrides that change what compile and draw show


def allow_imports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-imports", action="store_true",
                        help="let ops named package.module:op import their module (specs run no code otherwise)")


def build_parser() -> argparse.ArgumentParser:
    from .drawing import FORMATS, VIEWS
    from .flags import add_flags
    from .overrides import Overrides
    from .train.config import TrainConfig

    parser = argparse.ArgumentParser(prog="cortexgraph", description="Compile specs of multi-area recurrent "
                                     "vision networks into PyTorch modules.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check specs; print every problem as file:line:col: path: message")
    p.add_argument("specs", nargs="+", metavar="SPEC",
                   help="a spec file, a bundled spec name, or a folder (every .yaml, .yml and .json in it)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                   help="raise a resource limit (areas, edges, steps, channels, size, prenet, firings, parameters)")
    p.set_defaults(run=cmd_validate, parser=p)
    allow_imports(p)

    p = sub.add_parser("compile", help="validate and build a spec; print shapes, parameters, FLOPs, schedule")
    p.add_argument("spec", metavar="SPEC", help="a spec file or a bundled spec name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--export", metavar="FILE", help="also write a torch.export program (checked after reloading)")
    add_flags(p, Overrides, SHOWN)
    p.add_argument("--limit", action="append", default=[], metavar="NAME=N", help="raise a resource limit")
    p.set_defaults(run=cmd_compile, parser=p)
    allow_imports(p)

    p = sub.add_parser("draw", help="draw the area graph, its unrolling in time, or its transition matrix")
    p.add_argument("spec", metavar="SPEC", help="a spec file or a bundled spec name")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write (default: NAME-VIEW.svg)")
    p.add_argument("--view", choices=VIEWS, default="rolled")
    p.add_argument("--format", choices=FORMATS, help="default: the output's suffix")
    add_flags(p, Overrides, SHOWN)
    p.add_argument("--max-elements", type=int, metavar="N", help="draw past the usual bound on nodes and edges "
                   "(cells for the matrix) of 5,000 (matrix: 40,000), which renders in seconds")
    p.set_defaults(run=cmd_draw, parser=p)
    allow_imports(p)

    p = sub.add_parser("train", help="train a spec (digits, synthetic, CIFAR-10 or an image folder)",
                       description="Train a spec. Under torchrun (torchrun --nproc_per_node N -m cortexgraph "
                                   "train ...) it runs DistributedDataParallel.")
    add_flags(p, TrainConfig)
    p.set_defaults(run=cmd_train, parser=p)

    p = sub.add_parser("evaluate", help="accuracy, mean exit step and FLOPs of early exit at confidence thresholds",
                       description="Evaluate a trained model (a checkpoint of cortexgraph train) or a spec on a "
                                   "test split: the full run, then early exit at each --exit-threshold (each "
                                   "sample stops at the first step whose softmax confidence reaches it).")
    p.add_argument("spec", help="a checkpoint (.pt) or a spec")
    p.add_argument("--exit-threshold", type=float, nargs="+", default=[0.5, 0.9, 0.99], metavar="P",
                   help="confidence thresholds in (0, 1] (default: 0.5 0.9 0.99)")
    p.add_argument("--data", help="digits, digits-moving, synthetic, cifar10 or imagefolder:DIR (default: the "
                   "checkpoint's, else digits)")
    p.add_argument("--data-dir", help="where CIFAR-10 is (default: the checkpoint's, else data)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda:N (default: cpu)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.set_defaults(run=cmd_evaluate, parser=p)
    allow_imports(p)

    p = sub.add_parser("features", help="write areas' values at steps for a data set (for brain benchmarks)",
                       description="Write the value of each named area at each named step (AREA.tSTEP, such as "
                                   "V4.t3, or AREA.all: every step it holds a value) for every image of a data "
                                   "split, in chunks: to a folder of .npy files (with labels.npy and "
                                   "features.json: names, shapes, the spec, the checkpoint's SHA-256, the "
                                   "stimuli) or to an .h5 file (needs h5py).")
    p.add_argument("spec", help="a checkpoint (.pt) or a spec")
    p.add_argument("--at", nargs="+", required=True, metavar="AREA.tSTEP", help="V4.t3, IT.all, ...")
    p.add_argument("--out", required=True, help="a folder, or a file ending in .h5")
    p.add_argument("--pool", choices=["none", "avg", "max"], default="none",
                   help="whole maps, or averaged or maxed over space (default: none)")
    p.add_argument("--data", help="digits, digits-moving, synthetic, cifar10 or imagefolder:DIR (default: the "
                   "checkpoint's, else digits)")
    p.add_argument("--data-dir", help="where CIFAR-10 is (default: the checkpoint's, else data)")
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--limit", type=int, help="only the first N images of the split")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda:N (default: cpu)")
    p.set_defaults(run=cmd_features, parser=p)
    allow_imports(p)

    p = sub.add_parser("schema", help="print the JSON Schema of specs (for editors)")
    p.set_defaults(run=cmd_schema, parser=p)

    p = sub.add_parser("specs", help="list the bundled specs")
    p.add_argument("--table", action="store_true", help="a Markdown table of their sizes (builds each on the "
                   "meta device)")
    p.set_defaults(run=cmd_specs, parser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # said by the command's own parser, with its usage, not the top level's
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.run(args)
    except SpecError as exc:  # a command that loads one spec and fails on it
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_SPEC
    except KeyboardInterrupt as exc:  # Ctrl-C: say so (training says what it kept), exit as shells expect
        print(f"\ncortexgraph: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit does not fail
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
