"""What each `cortexgraph` command does, given its parsed arguments (`cli.py` parses them): its exit status,
0 (done), 1 (failed) or 2 (a bad spec, or an output refused), with every problem printed in one line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from .atomic import OutputError
from .errors import Problem, SpecError

EXIT_OK, EXIT_FAILED, EXIT_BAD_SPEC = 0, 1, 2
SHOWN = ("steps", "classes", "share", "norm", "size")  # the overrides that change what compile and draw show


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
    from .units import at_step

    return ", ".join(f"{area} {at_step(t, plan.spec.dt_ms)}" for area, t in plan.arrival.items())


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
            "edges": list(plan.edges), "steps": spec.steps, "dt_ms": spec.dt_ms, "arrival": plan.arrival,
            "readout": {"area": spec.readout.written, "steps": list(spec.readout_steps)},
            "parameters": plan.size.parameters, "bytes": plan.size.bytes}


def cmd_compile(args: argparse.Namespace) -> int:
    from .compiler import compile
    from .construct import construct
    from .flags import given
    from .overrides import Overrides
    from .summary import format_summary, summarize

    plan = compile(args.spec, limits=_limits(args.limit), allow_imports=args.allow_imports,
                   **given(args, Overrides, SHOWN))
    for problem in plan.warnings:
        print(problem, file=sys.stderr)
    summary = summarize(plan)  # from the Plan: nothing is built, however big the model
    if args.export:
        from .atomic import check_target
        from .export import example_inputs, export_program

        check_target(args.export)  # before exporting: a link or a device is refused at no cost
        model = construct(plan)
        try:
            diff = export_program(model, args.export)
        except OutputError:
            raise
        except Exception as exc:  # export can fail inside torch for user ops; say so in one line
            print(f"cortexgraph: export to {args.export} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        inputs = {name: ["batch", *t.shape[1:]] for name, t in example_inputs(model).items()}
        summary["export"] = {"path": args.export, "max_difference": diff, "inputs": inputs}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
        if args.export:
            takes = " and ".join(f"{name} ({', '.join(map(str, shape))})" for name, shape in inputs.items())
            print(f"\nexported to {args.export}: it takes {takes} (reloaded and checked: largest difference "
                  f"{diff:.1e})")
    return EXIT_OK


def cmd_draw(args: argparse.Namespace) -> int:

    from .atomic import check_target
    from .compiler import compile
    from .drawing import FORMATS, DrawError, TooBigToDraw, draw, format_of, render, rendered
    from .flags import given
    from .overrides import Overrides

    plan = compile(args.spec, allow_imports=args.allow_imports, **given(args, Overrides, SHOWN))
    spec = plan.spec
    to_stdout = args.output == "-"
    fmt = format_of(None if to_stdout else args.output, args.format)
    if fmt not in FORMATS:
        print(f"cortexgraph: cannot write {fmt!r}: formats are {', '.join(FORMATS)} (from --format, or the "
              "output's suffix)", file=sys.stderr)
        return EXIT_BAD_SPEC
    suffix = Path(args.output or "").suffix.lstrip(".").lower()
    if args.format and not to_stdout and suffix in FORMATS and suffix != fmt:
        print(f"cortexgraph: cannot write {fmt} into {args.output}: its suffix says {suffix}; name it "
              f"{Path(args.output).with_suffix('.' + fmt)}, or leave out --format", file=sys.stderr)
        return EXIT_BAD_SPEC
    named = args.output is not None
    output = args.output or f"{spec.name}-{args.view}.{fmt}"
    # A name the user gave may be replaced; the default name never is (the user did not name that file).
    path = Path(output)
    hint = (f"name a file in it, such as {path / f'{spec.name}-{args.view}.{fmt}'}" if path.is_dir()
            else "-o - writes to standard output" if path.exists() and not path.is_file()
            else "" if named else f"it is the default name: replace it with -o {output}, or write -o another name")
    if not to_stdout:
        check_target(output, replace=named, hint=hint)  # before drawing: a bad name costs nothing
    try:
        graph = draw(plan, view=args.view, max_elements=args.max_elements)
    except TooBigToDraw as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    try:
        if to_stdout:  # -o -: the drawing itself is the output, for a pipe or a terminal
            data = rendered(graph, fmt)
            sys.stdout.flush()
            stdout = getattr(sys.stdout, "buffer", None)
            if stdout is None:  # a text stream (captured output): dot is text, other formats are not
                sys.stdout.write(data.decode(errors="replace"))
                return EXIT_OK
            try:
                stdout.write(data)
                stdout.flush()
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise OutputError(f"cannot write to standard output: {exc.strerror or exc}", refused=False) from None
            return EXIT_OK
        render(graph, output, fmt, replace=named, hint=hint)
    except DrawError as exc:  # Graphviz missing or failing
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {output} ({args.view} view of {spec.name})")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .flags import made_from
    from .train import DataError, RefusedRun, TrainConfig, TrainingError, result_lines, train

    try:  # of the flags given only: a resumed run takes the others from its checkpoint
        config = made_from(args, TrainConfig)
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
        return EXIT_BAD_SPEC if isinstance(exc, RefusedRun) else EXIT_FAILED
    return EXIT_OK


def _model_and_data(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The model of `args.spec` (a checkpoint or a spec), its data and the device: each data setting as given,
    else the checkpoint's (its split seed too), else `train`'s default. The checkpoint's settings are data,
    validated as flags are, and its `data_dir` is read, never written to (nothing is downloaded there)."""
    from .builder import build
    from .checkpoint import CheckpointError, is_checkpoint_path, read_checkpoint
    from .train.config import DATA_FLAGS, TrainConfig
    from .train.data import DataError, check_batch, make_data, saved_data_settings
    from .train.distributed import World, device_for

    device = device_for(args.device, World(), args.command)
    model = build(args.spec, allow_imports=args.allow_imports, allow_nonfinite=args.allow_nonfinite)
    saved: dict = {}
    if is_checkpoint_path(args.spec):
        settings = saved_data_settings(read_checkpoint(args.spec).get("settings", {}))
        saved = {k: settings[k] for k in (*DATA_FLAGS, "seed") if k in settings}
        try:
            TrainConfig(spec=str(args.spec), **saved)
        except ValueError as exc:
            raise CheckpointError(f"{args.spec}: its settings cannot be used ({exc})") from None
    check_batch(model.spec, args.batch_size)
    chosen = {name: getattr(args, name) if getattr(args, name) is not None else
              saved.get(name, TrainConfig.model_fields[name].default) for name in DATA_FLAGS}
    theirs = args.data_dir is None and "data_dir" in saved
    if theirs and args.download:
        raise DataError(f"--download writes only where --data-dir names (the checkpoint's data_dir, "
                        f"{chosen['data_dir']}, is read, never written to)")
    data = make_data(chosen["data"], model.spec, chosen["data_dir"], saved.get("seed", 0), args.download,
                     chosen["augment"], chosen["normalize"], chosen["data_keys"], chosen["test_split"],
                     root_is_theirs=theirs)
    return model, data, device


def cmd_sweep(args: argparse.Namespace) -> int:
    from .atomic import write_file
    from .sweep import SweepError, load_sweep, open_study, run_sweep, write_report
    from .train.distributed import world_from_env

    report = args.words[0] == "report"
    words = args.words[1:] if report else args.words
    if len(words) != 1:
        args.parser.error("give one sweep file: cortexgraph sweep [report] SWEEP")
    sweep = load_sweep(words[0])  # a bad file: located problems, printed by main
    out = Path(args.out) if args.out else Path("sweeps") / sweep.name
    try:
        if report:
            if args.storage is None and not (out / "study.db").is_file():
                raise SweepError(f"{out} holds no study of {sweep.name}; run cortexgraph sweep {words[0]} first")
            written, notes = write_report(sweep, out, open_study(sweep, out, args.storage, create=False))
            print((out / "configurations.md").read_text(), end="")
            for note in notes:
                print(note)
            print("wrote " + ", ".join(str(path) for path in written))
            return EXIT_OK
        kept = out / "sweep.yaml"
        text = sweep.path.read_text()
        if kept.is_file() and kept.read_text() != text:
            raise SweepError(f"{out} holds a sweep made from another file ({kept}); run it with that file, or "
                             "give this one another --out")
        main_process = world_from_env().main  # (a torchrun job's other processes train what it says)
        if main_process:
            if args.storage:  # a server that cannot be reached leaves nothing behind
                open_study(sweep, out, args.storage)
            out.mkdir(parents=True, exist_ok=True)
            if not kept.is_file():
                write_file(kept, text, replace=False)
        done = run_sweep(sweep, out, args.workers, args.storage)
    except (SweepError, ValueError) as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    if main_process:
        print(f"{sweep.name}: {done} trials finished in {out}; cortexgraph sweep report {words[0]} summarises them")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .atomic import check_target, write_file
    from .checkpoint import CheckpointError
    from .evaluate import evaluate_exits, exit_table, rows_as_dicts
    from .train import DataError
    from .train.data import Strict

    if args.json:
        check_target(args.json)  # before the evaluation: a bad name costs nothing
    try:
        model, data, device = _model_and_data(args)
        rows = evaluate_exits(model, Strict(data.test), args.exit_threshold, args.batch_size, device)
    except (DataError, CheckpointError, ValueError) as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    print(f"{model.spec.name} on {data.name} (test split, {len(data.test):,} images)")
    print(exit_table(rows))
    if args.json:
        write_file(args.json, json.dumps(rows_as_dicts(rows), indent=2) + "\n")
    return EXIT_OK


def cmd_features(args: argparse.Namespace) -> int:

    from torch.utils.data import Subset

    from .checkpoint import CheckpointError
    from .extract import feature_shapes, write_features
    from .feature_files import FeaturesError, check_output, feature_bytes
    from .train import DataError
    from .train.data import Strict

    pool = None if args.pool == "none" else args.pool
    try:
        model, data, device = _model_and_data(args)
        about: dict = {"model": args.spec, **_checkpoint_digest(args.spec)}
        split = Strict(data.test if args.split == "test" else data.plain_train)  # images as they are
        if args.limit is not None:
            split = Subset(split, range(min(args.limit, len(split))))
        about["stimuli"] = {"data": data.name, "split": args.split, "images": len(split)}
        if args.dry_run:
            shapes = feature_shapes(model, args.at, pool)
            check_output(args.out, shapes, len(split), args.overwrite)
            print(_features_dry_run(args.out, shapes, len(split), feature_bytes(shapes, len(split))))
            return EXIT_OK
        out = write_features(model, split, args.at, args.out, pool, args.batch_size, device, about, args.overwrite)
    except (DataError, CheckpointError, FeaturesError, ValueError) as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    print(f"wrote the features of {len(split):,} images ({data.name}, {args.split} split) to {out}")
    return EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import Subset

    from .checkpoint import CheckpointError
    from .experiments import experiment
    from .lock import InUse
    from .probe import probe, write_probe
    from .train import DataError
    from .train.data import Strict, stacked

    def first(dataset):
        return stacked(Subset(Strict(dataset), range(min(args.limit, len(dataset)))))

    try:
        chosen = experiment(args.experiment)
        model, data, device = _model_and_data(args)
        images, labels = first(data.test)
        masks = None
        if chosen.needs_mask:  # a superposition of five other images, as normalised as the images
            pool = first(data.plain_train)[0]
            generator = torch.Generator().manual_seed(args.seed)
            masks = pool[torch.randint(len(pool), (len(images), 5), generator=generator)].mean(1)
            masks = (masks - masks.mean()) / masks.std().clamp_min(1e-12) * images.std() + images.mean()
        result = probe(model, images, labels, chosen, args.levels, args.batch_size, device, masks, args.seed)
        about = {"model": args.spec, **_checkpoint_digest(args.spec),
                 "stimuli": {"data": data.name, "split": "test", "images": len(images), "seed": args.seed}}
        out = Path(args.out) if args.out else Path("probes") / model.spec.name
        written = write_probe(result, out, about, args.overwrite)
    except (DataError, CheckpointError, InUse, ValueError, OSError) as exc:
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    for warning in result.warnings:
        print(f"cortexgraph: warning: {warning}", file=sys.stderr)
    print(_probe_table(result))
    print("wrote " + ", ".join(str(p) for p in written))
    return EXIT_OK


def _probe_table(result) -> str:
    """The summary as a Markdown table: per level, accuracy and each area's peak evoked response (step)."""
    from .units import at_step

    rows = result.summary()
    head = [result.experiment.parameter] + (["accuracy"] if "accuracy" in rows[0] else [])
    head += [f"{area} peak, at step" for area in result.areas]
    if result.experiment.name == "interval":
        head += [f"{area} second/first" for area in result.areas]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        cells = [str(row[result.experiment.parameter])]
        if "accuracy" in row:
            cells.append(f"{100 * row['accuracy']:.1f}%")
        cells += [f"{row[f'{a} peak']:.3g} at {at_step(row[f'{a} peak step'], result.dt_ms)}" for a in result.areas]
        if result.experiment.name == "interval":
            cells += [f"{row[f'{a} second/first']:.2f}" for a in result.areas]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _checkpoint_digest(path: str) -> dict:
    """{"checkpoint_sha256": ...} for a checkpoint, read in blocks; {} for a spec."""
    import hashlib

    from .checkpoint import is_checkpoint_path

    if not is_checkpoint_path(path):
        return {}
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"checkpoint_sha256": digest.hexdigest()}


def _features_dry_run(out: str, shapes: dict, images: int, size: int) -> str:
    from .units import format_bytes

    names = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in shapes.items())
    return (f"would write the features of {images:,} images to {out}: {names}, and the labels; about "
            f"{format_bytes(size)}")


def cmd_schema(args: argparse.Namespace) -> int:
    from .schema import json_schema
    from .sweep.file import sweep_schema

    print(json.dumps(sweep_schema() if args.sweep else json_schema(), indent=2))
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
