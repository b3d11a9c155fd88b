"""What compiling costs: the ResNet-18 spec against torchvision's resnet18, and build times.

    python benchmarks/overhead.py                      # 224x224 (batch 8) and 32x32 (batch 64)
    python benchmarks/overhead.py --quick              # fewer repeats
    python benchmarks/overhead.py --json out.json

Both models hold the same weights (loaded through cortexgraph.interop) and run
in one process, one after the other in each repeat (alternating which goes
first) after warm-up; the table gives median times and the median of the
per-repeat ratios (cortexgraph / torchvision: 1.00 means no overhead).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torchvision

from cortexgraph import analyze, load_spec
from cortexgraph.bundled import bundled_specs
from cortexgraph.interop import load_torchvision
from cortexgraph.model import CortexNet, construct, override
from cortexgraph.plan import make_plan


def forward(model, x):
    model.eval()
    with torch.no_grad():
        model(x)


def forward_backward(model, x):
    model.train()
    model(x).sum().backward()
    model.zero_grad(set_to_none=True)


def interleaved(fns: dict, arg, repeats: int, warmup: int) -> dict[str, list[float]]:
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name](arg)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            fns[name](arg)
            times[name].append(time.perf_counter() - start)
    return times


def compare(size: int, batch: int, repeats: int, warmup: int) -> list[dict]:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    ours = load_torchvision(override(load_spec("torchvision/resnet18"), size=size), reference)
    x = torch.randn(batch, 3, size, size)
    rows = []
    for label, step in (("forward", forward), ("forward+backward", forward_backward)):
        times = interleaved({"torchvision": lambda a, s=step: s(reference, a),
                             "cortexgraph": lambda a, s=step: s(ours, a)}, x, repeats, warmup)
        ratios = [o / t for o, t in zip(times["cortexgraph"], times["torchvision"])]
        rows.append({"input": f"{batch}x3x{size}x{size}", "pass": label,
                     "torchvision_ms": 1e3 * statistics.median(times["torchvision"]),
                     "cortexgraph_ms": 1e3 * statistics.median(times["cortexgraph"]),
                     "ratio": statistics.median(ratios)})
    return rows


def build_times(repeats: int) -> list[dict]:
    rows = []
    for name in bundled_specs():
        front, plan_t, module, assemble = [], [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            analysis = analyze(load_spec(name))
            t1 = time.perf_counter()
            plan = make_plan(analysis)
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
    parser.add_argument("--quick", action="store_true", help="5 repeats instead of 21")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    repeats, warmup = (5, 1) if args.quick else (21, 3)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    rows = compare(224, 8, repeats, warmup) + compare(32, 64, repeats, warmup)
    print(f"\n{'input':>16} {'pass':>17} {'torchvision':>12} {'cortexgraph':>12} {'ratio':>7}")
    for r in rows:
        print(f"{r['input']:>16} {r['pass']:>17} {r['torchvision_ms']:10.1f}ms {r['cortexgraph_ms']:10.1f}ms "
              f"{r['ratio']:7.3f}")
    builds = build_times(3 if args.quick else 7)
    print(f"\n{'bundled spec':28s} {'validate':>9} {'plan':>7} {'modules':>9} {'+weights':>9} {'total':>9}")
    for b in builds:
        print(f"{b['spec']:28s} {b['validate_ms']:7.1f}ms {b['plan_ms']:5.1f}ms {b['assemble_ms']:7.1f}ms "
              f"{b['module_ms']:7.1f}ms {b['total_ms']:7.1f}ms")
    print("(modules: assembled on the meta device; +weights: allocated and initialised, as `build` does)")
    torchvision_build = min(_time(torchvision.models.resnet18) for _ in range(5))
    print(f"torchvision's resnet18() for comparison: {1e3 * torchvision_build:.1f}ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"overhead": rows, "build": builds, "torchvision_resnet18_build_ms": 1e3 * torchvision_build,
                       "threads": torch.get_num_threads(), "torch": torch.__version__}, f, indent=2)


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
