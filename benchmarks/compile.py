"""torch.compile(fullgraph=True) on compiled specs: compile time, speed-up, and against compiled
hand-written equivalents.

    python benchmarks/compile.py --quick           # part of `make bench`
    python benchmarks/compile.py --json out.json   # more models, and training steps

Each model is compiled with inductor (the default backend) and fullgraph=True,
which fails on any graph break. The compile time is the first call's; the
timed runs come after. Pairs hold the same weights: the srn1 spec and the
hand-written loop (common.HandWrittenLoop), the ResNet-18 spec and
torchvision's resnet18, each ConvRNN stream (convrnn/*: a GRU, LSTM, RGC or
leaky cell in every area) and a loop over the same modules (common.StreamLoop).
`--only NAME` runs the cases whose name contains NAME. Inductor starts with an empty cache and is warmed up
on a small function first, so the first model does not pay for its start; a
reference compiled after ours may reuse kernels ours generated.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

# Compile times are measured cold: an empty inductor cache for this process.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="cortexgraph-inductor-"))

import torch  # noqa: E402
import torchvision  # noqa: E402
from common import (  # noqa: E402
    HandWrittenLoop,
    StreamLoop,
    forward,
    forward_backward,
    interleaved,
    machine,
    median_ratio,
    ms,
    write_json,
)

from cortexgraph import build  # noqa: E402
from cortexgraph.interop import load_torchvision  # noqa: E402
from cortexgraph.overrides import override  # noqa: E402
from cortexgraph.spec import load_spec  # noqa: E402


def compiled(model: torch.nn.Module, x: torch.Tensor, train: bool) -> tuple[torch.nn.Module, float]:
    """The compiled model and the seconds its first call took (tracing and code generation)."""
    fast = torch.compile(model, fullgraph=True)
    start = time.perf_counter()
    (forward_backward if train else forward)(fast, x)()
    return fast, time.perf_counter() - start


def cases(quick: bool) -> list[tuple[str, torch.nn.Module, torch.nn.Module | None, str, torch.Tensor]]:
    """(name, ours, hand-written reference or None, reference's name, input)."""
    torch.manual_seed(0)
    srn1 = build("liao2016/srn1-cifar", size=16)
    out = [("srn1-cifar @16", srn1, HandWrittenLoop(srn1), "hand-written loop", torch.randn(32, 3, 16, 16)),
           ("demo/frnn3-digits", build("demo/frnn3-digits"), None, "", torch.randn(64, 1, 16, 16))]
    if not quick:
        reference = torchvision.models.resnet18()
        ours = load_torchvision(override(load_spec("torchvision/resnet18"), size=32), reference)
        out.append(("resnet18 @32", ours, reference, "torchvision resnet18", torch.randn(64, 3, 32, 32)))
        out.append(("frnn4-cifar @32", build("liao2016/frnn4-cifar"), None, "", torch.randn(32, 3, 32, 32)))
        for cell in ("gru", "lstm", "rgc", "leaky"):
            stream = build(f"convrnn/{cell}-stream")
            out.append((f"{cell}-stream", stream, StreamLoop(stream), "loop", torch.randn(16, 3, 32, 32)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--only", metavar="NAME", help="only the cases whose name contains NAME")
    args = parser.parse_args()
    repeats, warmup = (5, 1) if args.quick else (11, 2)
    info = machine()
    print(f"machine: {info['cpu']}, {info['threads']} threads, torch {info['torch']}")
    torch.compile(lambda a: torch.relu(a) + 1, fullgraph=True)(torch.randn(4))  # warm inductor up
    rows = []
    passes = [False] if args.quick else [False, True]
    print(f"{'model':>20} {'pass':>17} {'compile':>8} {'eager':>9} {'compiled':>9} {'speed-up':>8}   "
          f"compiled vs hand-written")
    for name, ours, reference, reference_name, x in cases(args.quick):
        if args.only and args.only not in name:
            continue
        for train in passes:
            label = "forward+backward" if train else "forward"
            fast, seconds = compiled(ours, x, train)
            make = forward_backward if train else forward
            contenders = {"eager": make(ours, x), "compiled": make(fast, x)}
            if reference is not None:
                fast_reference, reference_seconds = compiled(reference, x, train)
                contenders["reference"] = make(fast_reference, x)
            times = interleaved(contenders, repeats, warmup)
            row = {"model": name, "pass": label, "compile_s": seconds, "eager_ms": ms(times["eager"]),
                   "compiled_ms": ms(times["compiled"]), "speedup": 1 / median_ratio(times, "compiled", "eager")}
            versus = ""
            if reference is not None:
                row.update(reference=reference_name, reference_compile_s=reference_seconds,
                           reference_compiled_ms=ms(times["reference"]),
                           compiled_vs_reference=median_ratio(times, "compiled", "reference"))
                versus = (f"{row['compiled_vs_reference']:.3f} ({reference_name}: {row['reference_compiled_ms']:.1f}ms,"
                          f" compile {reference_seconds:.1f}s)")
            rows.append(row)
            print(f"{name:>20} {label:>17} {seconds:7.1f}s {row['eager_ms']:7.1f}ms {row['compiled_ms']:7.1f}ms "
                  f"{row['speedup']:7.2f}x   {versus}", flush=True)
    write_json(args.json, {"compile": rows})


if __name__ == "__main__":
    main()
