"""The `cortexgraph` command.

A bad spec never shows a traceback: every problem is printed as
`file:line:col: path: message (hint)` and the command exits with status 2.
Here: the command line's shape and the handling every command shares; what
each command does is in `commands.py`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .atomic import OutputError
from .commands import (
    EXIT_BAD_SPEC,
    EXIT_FAILED,
    EXIT_OK,
    SHOWN,
    cmd_compile,
    cmd_draw,
    cmd_evaluate,
    cmd_features,
    cmd_probe,
    cmd_schema,
    cmd_specs,
    cmd_sweep,
    cmd_train,
    cmd_validate,
)
from .errors import SpecError


def allow_imports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-imports", action="store_true",
                        help="let ops named package.module:op import their module (specs run no code otherwise)")


def allow_nonfinite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-nonfinite", action="store_true", help="load a checkpoint whose weights or "
                        "buffers hold NaN or infinity (refused otherwise)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def _levels(text: str) -> list:
    """Comma-separated levels, each a whole number or a decimal."""
    levels = []
    for word in text.split(","):
        try:
            levels.append(int(word) if word.strip().lstrip("-").isdigit() else float(word))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{word!r} is not a number; give levels as 0,0.5,1") from None
    return levels


def _stimuli_flags(p: argparse.ArgumentParser) -> None:
    """The flags of a command that runs a trained model on a data set (evaluate, features, probe): the data
    settings (the checkpoint's where not given), the batch size and the device."""
    from .flags import add_flags
    from .train.config import DATA_FLAGS, TrainConfig

    add_flags(p, TrainConfig, DATA_FLAGS, unset="the checkpoint's, else {default}")
    add_flags(p, TrainConfig, ["download"])
    p.add_argument("--batch-size", type=_positive, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda:N (default: cpu)")


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
    p.add_argument("-o", "--output", metavar="FILE", help="where to write (default: NAME-VIEW.svg, never replaced "
                   "unless named); - writes to standard output")
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

    p = sub.add_parser("sweep", help="train many specs, settings and seeds as one study (Optuna)",
                       description="Run the trials of a sweep file (each an ordinary run folder under OUT/trials), "
                                   "or, with 'report', write what they found: trials.csv, configurations.csv (each "
                                   "configuration's mean and standard deviation over seeds) and, with several "
                                   "objectives, pareto.csv. A sweep run again continues where it stopped.")
    p.add_argument("words", nargs="+", metavar="[report] SWEEP", help="a sweep file (.yaml or .json)")
    p.add_argument("--out", help="the sweep's folder (default: sweeps/<its name>)")
    p.add_argument("--workers", type=_positive, default=1, help="trials at once, each in its own process "
                   "(default: 1)")
    p.add_argument("--storage", help="a database URL that workers on many machines share, such as "
                   "postgresql://user@host/db (default: OUT/study.db, a SQLite file)")
    p.set_defaults(run=cmd_sweep, parser=p)

    p = sub.add_parser("evaluate", help="accuracy, mean exit step and FLOPs of early exit at confidence thresholds",
                       description="Evaluate a trained model (a checkpoint of cortexgraph train) or a spec on a "
                                   "test split: the full run, then early exit at each --exit-threshold (each "
                                   "sample stops at the first step whose softmax confidence reaches it).")
    p.add_argument("spec", help="a checkpoint (.pt) or a spec")
    p.add_argument("--exit-threshold", type=float, nargs="+", default=[0.5, 0.9, 0.99], metavar="P",
                   help="confidence thresholds in (0, 1] (default: 0.5 0.9 0.99)")
    _stimuli_flags(p)
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.set_defaults(run=cmd_evaluate, parser=p)
    allow_imports(p)
    allow_nonfinite(p)

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
    _stimuli_flags(p)
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--limit", type=_positive, help="only the first N images of the split")
    p.add_argument("--overwrite", action="store_true", help="replace features already in OUT, once the new ones "
                   "are complete (never replaced otherwise)")
    p.add_argument("--dry-run", action="store_true", help="check everything and say what would be written, and "
                   "its size; write nothing")
    p.set_defaults(run=cmd_features, parser=p)
    allow_imports(p)
    allow_nonfinite(p)

    p = sub.add_parser("probe", help="an in-silico experiment: each area's response and accuracy over steps, "
                       "per condition (duration, interval, contrast, noise, occlusion, mask)",
                       description="Show a model the stimuli of an experiment (each condition a sequence of "
                                   "frames, one per step) and record each area's response (its mean absolute "
                                   "activity) at every step, its evoked response (less the blank's) and accuracy "
                                   "at every readout step; write NAME.csv, NAME-summary.csv, NAME.png and "
                                   "NAME.json to --out.")
    p.add_argument("spec", help="a checkpoint (.pt) or a spec")
    p.add_argument("--experiment", required=True, help="duration, interval, contrast, noise, occlusion, mask, "
                   "or one registered with cortexgraph.register_experiment")
    p.add_argument("--levels", type=_levels, help="the levels to try, comma-separated (default: the experiment's)")
    p.add_argument("--out", help="a folder (default: probes/<spec name>)")
    _stimuli_flags(p)
    p.add_argument("--limit", type=_positive, default=1000, help="the first N test images (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="noise, occlusion and masks are drawn from it")
    p.add_argument("--overwrite", action="store_true", help="replace this experiment's files in OUT")
    p.set_defaults(run=cmd_probe, parser=p)
    allow_imports(p)
    allow_nonfinite(p)

    p = sub.add_parser("schema", help="print the JSON Schema of specs (for editors)")
    p.add_argument("--sweep", action="store_true", help="the JSON Schema of sweep files instead")
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
    stdout = sys.stdout = _Watched(sys.stdout)
    try:
        status = args.run(args)
        sys.stdout.flush()  # here, not at exit: a full device is then one line, not Python's "Exception ignored"
        return status
    except SpecError as exc:  # a command that loads one spec and fails on it
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_SPEC
    except OutputError as exc:  # a file that cannot or must not be written
        print(f"cortexgraph: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC if exc.refused else EXIT_FAILED
    except KeyboardInterrupt as exc:  # Ctrl-C: say so (training says what it kept), exit as shells expect
        print(f"\ncortexgraph: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (| head): not an error
        _discard(stdout.stream)
        return EXIT_OK
    except OSError as exc:
        if exc is not stdout.failed:
            raise
        _discard(stdout.stream)
        print(f"cortexgraph: cannot write to standard output: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        sys.stdout = stdout.stream


class _Watched:
    """Standard output, remembering the error its writes raised: a full device (/dev/full) is then told
    from any other OSError, and said in one line."""

    def __init__(self, stream):
        self.stream, self.failed = stream, None

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as exc:
            self.failed = exc
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            self.failed = exc
            raise

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def _discard(stream) -> None:
    """What is left for standard output goes nowhere, so that the flush at exit does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (captured output in tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
