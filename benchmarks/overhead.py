"""What compiling a spec costs at run time, and how long building takes.

    python benchmarks/overhead.py --quick          # part of `make bench`
    python benchmarks/overhead.py                  # more sizes, more repeats
    python benchmarks/overhead.py --json out.json
    python benchmarks/overhead.py --only stream    # the comparisons whose name has "stream"

Contenders, each pair holding the same weights and run in one process,
interleaved after warm-up (see common.interleaved); the ratio is the median
of per-repeat ratios (cortexgraph / reference; 1.00 = no overhead):

- the ResNet-18 and ResNet-50 specs against torchvision's resnet18/50
  (weights loaded through cortexgraph.interop), at 224 and 32 pixels;
- the 1-state shared residual spec (liao2016/srn1-cifar) against the loop a
  researcher would write by hand (common.HandWrittenLoop);
- the ConvGRU, ConvLSTM, RGC and leaky streams (convrnn/*) against a loop
  over the same modules doing the same updates (common.StreamLoop);
- CORnet-R and CORnet-RT against the published code's structure
  (tests/test_cornet_family.py's references), with the same weights.

Forward: eval mode under no_grad. Forward+backward: train mode, sum().backward().
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torchvision
from common import (
    HandWrittenLoop,
    StreamLoop,
    forward,
    forward_backward,
    interleaved,
    machine,
    median_ratio,
    ms,
    ratio_range,
    write_json,
)

from cortexgraph import analyze, build, load_spec
from cortexgraph.bundled import bundled_specs
from cortexgraph.construct import construct
from cortexgraph.interop import load_cornet, load_torchvision
from cortexgraph.model import CortexNet
from cortexgraph.overrides import override
from cortexgraph.plan import PlanFamily

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the references the tests check against
from tests.test_cornet_family import CORnetR  # noqa: E402


def pairs(quick: bool) -> list[tuple[str, str, torch.nn.Module, torch.nn.Module, torch.Tensor]]:
    """(name, input, reference, ours, x) for each comparison."""
    out = []
    sizes = [("resnet18", 224, 8), ("resnet18", 32, 64), ("resnet50", 32, 32)]
    if not quick:
        sizes.append(("resnet50", 224, 4))
    for arch, size, batch in sizes:
        torch.manual_seed(0)
        reference = getattr(torchvision.models, arch)()
        ours = load_torchvision(override(load_spec(f"torchvision/{arch}"), size=size), reference)
        out.append((f"{arch} vs torchvision", f"{batch}x3x{size}x{size}", reference, ours,
                    torch.randn(batch, 3, size, size)))
    size, batch = (16, 32) if quick else (32, 32)
    ours = build("liao2016/srn1-cifar", size=size)
    out.append(("srn1 vs hand-written loop", f"{batch}x3x{size}x{size}", HandWrittenLoop(ours), ours,
                torch.randn(batch, 3, size, size)))
    for cell in ("gru", "lstm", "rgc", "leaky"):  # cells: the runner against a loop over the same modules
        ours = build(f"convrnn/{cell}-stream")
        out.append((f"{cell} stream vs loop", "16x3x32x32", StreamLoop(ours), ours, torch.randn(16, 3, 32, 32)))
    size = 64 if quick else 224
    for name, same_step in (("cornet-r", True), ("cornet-rt", False)):  # against CORnet's published structure
        torch.manual_seed(0)
        reference = CORnetR(same_step)
        ours = load_cornet(name, {f"module.{k}": v for k, v in reference.state_dict().items()},
                           spec=override(load_spec(f"cornet/{name}"), size=size))
        out.append((f"{name} vs its published code", f"4x3x{size}x{size}", reference, ours,
                    torch.randn(4, 3, size, size)))
    return out


def compare(quick: bool, only: str | None = None) -> list[dict]:
    repeats, warmup = (11, 2) if quick else (21, 3)
    rows = []
    for name, shape, reference, ours, x in pairs(quick):
        if only and only not in name:
            continue
        for label, make in (("forward", forward), ("forward+backward", forward_backward)):
            times = interleaved({"reference": make(reference, x), "cortexgraph": make(ours, x)}, repeats, warmup)
            low, high = ratio_range(times, "cortexgraph", "reference")
            rows.append({"comparison": name, "input": shape, "pass": label, "reference_ms": ms(times["reference"]),
                         "cortexgraph_ms": ms(times["cortexgraph"]),
                         "ratio": median_ratio(times, "cortexgraph", "reference"), "ratio_range": [low, high]})
            r = rows[-1]
            print(f"{name:>26} {shape:>13} {label:>17} {r['reference_ms']:9.1f}ms {r['cortexgraph_ms']:9.1f}ms "
                  f"{r['ratio']:7.3f} [{low:.2f}-{high:.2f}]", flush=True)
    return rows


def build_times(repeats: int) -> list[dict]:
    rows = []
    for name in bundled_specs():
        front, plan_t, module, assemble = [], [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            analysis = analyze(load_spec(name))
            t1 = time.perf_counter()
            plan = PlanFamily(analysis).plan()
            t2 = time.perf_counter()
            construct(plan)
            t3 = time.perf_counter()
            with torch.device("meta"):  # the modules alone, without allocating or initialising weights
                CortexNet(plan)
            t4 = time.perf_counter()
            front.append(t1 - t0)
            plan_t.append(t2 - t1)
            module.append(t3 - t2)
            assemble.append(t4 - t3)
        rows.append({"spec": name, "validate_ms": 1e3 * min(front), "plan_ms": 1e3 * min(plan_t),
                     "assemble_ms": 1e3 * min(assemble), "module_ms": 1e3 * min(module),
                     "total_ms": 1e3 * (min(front) + min(plan_t) + min(module))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats (for make bench)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--only", metavar="NAME", help="only the comparisons whose name contains NAME (no build times)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # CPU time of one thread: a shared machine's other work does not count
    info = machine()
    print(f"machine: {info['cpu']}, {info['threads']} thread, torch {info['torch']}; CPU time, "
          f"{11 if args.quick else 21} interleaved repeats: the median ratio [its range]")
    print(f"{'comparison':>26} {'input':>13} {'pass':>17} {'reference':>11} {'cortexgraph':>11} {'ratio':>7}")
    rows = compare(args.quick, args.only)
    if args.only:
        write_json(args.json, {"overhead": rows})
        return
    builds = build_times(3 if args.quick else 7)
    print(f"\n{'bundled spec':30s} {'validate':>9} {'plan':>7} {'modules':>9} {'+weights':>9} {'total':>9}")
    for b in builds:
        print(f"{b['spec']:30s} {b['validate_ms']:7.1f}ms {b['plan_ms']:5.1f}ms {b['assemble_ms']:7.1f}ms "
              f"{b['module_ms']:7.1f}ms {b['total_ms']:7.1f}ms")
    print("(modules: assembled on the meta device; +weights: allocated and initialised, as `build` does)")
    reference_build = min(_time(torchvision.models.resnet18) for _ in range(5))
    print(f"torchvision's resnet18() for comparison: {1e3 * reference_build:.1f}ms")
    write_json(args.json, {"overhead": rows, "build": builds, "torchvision_resnet18_build_ms": 1e3 * reference_build})


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
