"""The GPU benchmark: overhead and torch.compile with bf16 autocast and channels-last, and a roofline.

    python benchmarks/gpu.py                        # on a machine with CUDA; a few minutes
    python benchmarks/gpu.py --json gpu.json
    python benchmarks/gpu.py --device cpu --quick   # a dry run of the same code on the CPU

For the ResNet-18 and ResNet-50 specs against torchvision's models (same
weights), and the 4-state recurrent spec: training steps (forward, backward,
SGD) under bf16 autocast with channels-last tensors, eager and compiled
(fullgraph=True), interleaved. The roofline column is the achieved rate
(FLOPs of one training step counted by flop_counter, over its median time)
as a fraction of the dense bf16 matrix-multiply rate measured on the same
device (8192 x 8192 products).

The recurrent specs (liao2016/frnn4-cifar and srn1-cifar at batch 256, 32x32;
frnn4-imagenet at batch 64, 224x224) get a table of their own: the same SGD
training step eager, with activation checkpointing, as the naive unrolling
(every area at every step, as PyTorchTNN-style tools run: benchmarks/pruning.py),
and compiled in each torch.compile mode (reduce-overhead: CUDA graphs), each
interleaved with the eager step. Per row: milliseconds per step, images per
second, the ratio to eager, the fraction of the step the GPU is busy (the
union of its kernels' intervals in a profiled run of 10 steps, over the
unprofiled step time), the peak memory a step adds after a first step (eager
runs only: CUDA graphs hold their memory in pools), and the compile time.
Rows are printed and written as they are measured.

    python benchmarks/gpu.py --recurrent-only --specs liao2016/frnn4-cifar
    python benchmarks/gpu.py --modes default reduce-overhead   # which compile modes (all three by default)
    python benchmarks/gpu.py --resnet-modes eager              # the ResNets eager only (no compiles)
    python benchmarks/gpu.py --recurrent-only --extras         # also stacked norms, the optimizer in a graph
    python benchmarks/gpu.py --device cpu --quick --backend aot_eager   # dry run of every path, no Inductor
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torchvision
from common import interleaved, machine, median_ratio, ms, sync, write_json
from kernels import stack_norms
from pruning import naive_forward
from torch.utils.flop_counter import FlopCounterMode

from cortexgraph import build
from cortexgraph.interop import load_torchvision
from cortexgraph.overrides import override
from cortexgraph.spec import load_spec


def matmul_rate(device: str, size: int, repeats: int = 20) -> float:
    """Dense bf16 matrix-multiply FLOP/s on this device: the roof."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def training_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: str, run=None,
                  graphs: bool = False, optimizer_compiled: dict | None = None):
    """One SGD step (as `cortexgraph train` makes it: fused on CUDA) of `run(x)` (default: `model(x)`);
    `graphs`: mark each step's start for CUDA graphs. `optimizer_compiled`: the optimizer's step compiled
    too, with these torch.compile options (on CUDA, reduce-overhead: the step in a CUDA graph of its own),
    from the second step on: the first, eager, makes the momentum buffers, which must not live in a CUDA
    graph's memory pool (its outputs are freed at the next step). It is then a foreach SGD, the form
    Inductor fuses (a fused one is already one kernel). Gradients are set to None after every step: a
    `.grad` kept across steps would be a graph's output that the next replay overwrites."""
    cuda = torch.device(device).type == "cuda"
    kernels = {"foreach": True} if optimizer_compiled is not None else {"fused": True} if cuda else {}
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, **kernels)
    compiled_update = (None if optimizer_compiled is None else
                       torch.compile(optimizer.step, fullgraph=False, **optimizer_compiled))
    update = optimizer.step
    loss_fn = torch.nn.CrossEntropyLoss()
    run = model if run is None else run

    def step():
        nonlocal update
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
            loss = loss_fn(run(x).float(), y)
        loss.backward()
        update()
        update = compiled_update or update
        optimizer.zero_grad(set_to_none=True)
    return step


def compile_options(backend: str | None, mode: str | None) -> dict:
    """torch.compile's options: Inductor in `mode` (its default where None), or `backend` in its place (the
    CPU's dry run)."""
    return {"backend": backend} if backend else {"mode": mode} if mode else {}


def step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> int:
    with FlopCounterMode(display=False) as counter:
        training_step(model, x, y, device)()
    return counter.get_total_flops()


def cases(device: str, quick: bool):
    size, batch = (32, 8) if quick else (224, 64)
    out = []
    for arch in (["resnet18"] if quick else ["resnet18", "resnet50"]):
        torch.manual_seed(0)
        reference = getattr(torchvision.models, arch)()
        ours = load_torchvision(override(load_spec(f"torchvision/{arch}"), size=size), reference)
        out.append((f"{arch} {batch}x{size}", ours, reference, batch, size))
    for _, ours, reference, _, _ in out:
        for model in (ours, reference):
            if model is not None:
                model.to(device, memory_format=torch.channels_last).train()
    return out


RECURRENT = {"liao2016/frnn4-cifar": (256, 32), "liao2016/srn1-cifar": (256, 32), "liao2016/frnn4-imagenet": (64, 224)}
MODES = ("default", "reduce-overhead", "max-autotune")


def gpu_busy_ms(step, device: str, steps: int = 10) -> float | None:
    """Milliseconds per step during which the GPU runs a kernel (the union of kernel intervals, so that
    overlapping kernels count once), from a profiled run of `steps` steps; None off CUDA."""
    if torch.device(device).type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        sync(device)
    spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                   if e.device_type == torch.autograd.DeviceType.CUDA)
    busy, reach = 0.0, float("-inf")
    for start, end in spans:
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return busy / 1e3 / steps


def step_peak_mb(step, device: str) -> float | None:
    """The memory one step adds at its peak, over what was allocated before it (CUDA's allocator), after
    a step unmeasured: the momentum buffers and cuDNN's workspaces for new shapes are made once."""
    if torch.device(device).type != "cuda":
        return None
    step()
    sync(device)
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    sync(device)
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def recurrent_rows(name: str, batch: int, size: int, device: str, modes: tuple[str, ...], backend: str | None,
                   repeats: int, warmup: int, extras: bool = False):
    """One spec's training step every way it can run, one row each, yielded as each is measured (so a run
    stopped at a time limit keeps the rows before): eager, checkpointed, the naive unrolling, compiled in
    each of `modes`. Every row is timed interleaved with the eager step, its ratio the median of paired
    repeats. `extras`: also the two choices issue 16 left to a GPU to settle: per-step norms stacked into
    one module per edge (eager and under CUDA graphs; benchmarks/kernels.py counts their operations), and
    the optimizer's step in a CUDA graph of its own beside the model's."""
    torch.manual_seed(0)
    base = build(name, size=size).to(device, memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, base.spec.readout.head.classes, (batch,), device=device)
    eager = training_step(base, x, y, device)

    def row(what: str, step, compile_s: float | None = None, peak: bool = False) -> dict:
        peak_mb = step_peak_mb(step, device) if peak else None  # not under CUDA graphs: their pools persist
        times = interleaved({"eager": eager} if what == "eager" else {"eager": eager, what: step},
                            repeats, warmup, device)
        step_ms = ms(times[what])
        busy = gpu_busy_ms(step, device)
        return {"spec": name, "batch": batch, "size": size, "run": what, "ms": step_ms,
                "images_per_second": batch / step_ms * 1e3,
                "vs_eager": median_ratio(times, what, "eager") if what != "eager" else 1.0,
                "gpu_busy": None if busy is None else min(busy / step_ms, 1.0), "peak_mb": peak_mb,
                "compile_s": compile_s}

    def compiled_row(what: str, model: torch.nn.Module, mode: str, compiled=None,
                     optimizer_compiled: dict | None = None) -> tuple[dict, torch.nn.Module]:
        compiled = compiled or torch.compile(model, fullgraph=True, **compile_options(backend, mode))
        graphs = mode in ("reduce-overhead", "max-autotune")  # the two modes that replay CUDA graphs
        step = training_step(model, x, y, device, run=compiled, graphs=graphs, optimizer_compiled=optimizer_compiled)
        start = time.perf_counter()
        step()  # compiles (and, under CUDA graphs, records them over the next calls)
        if optimizer_compiled is not None:
            step()  # the optimizer's step compiles at the second (the first ran eagerly)
        sync(device)
        return row(what, step, compile_s=time.perf_counter() - start), compiled

    yield row("eager", eager, peak=True)
    checkpointed = copy.deepcopy(base)
    checkpointed.checkpoint = True
    yield row("checkpointed", training_step(checkpointed, x, y, device), peak=True)
    naive = copy.deepcopy(base)
    steps = base.spec.steps
    yield row("naive", training_step(naive, x, y, device, run=lambda images: naive_forward(naive, images, steps)),
              peak=True)
    graphed: tuple[torch.nn.Module, torch.nn.Module] | None = None  # the model under CUDA graphs, compiled
    for mode in modes:
        model = copy.deepcopy(base)
        measured, compiled = compiled_row(mode, model, mode)
        if mode == "reduce-overhead":
            graphed = (model, compiled)
        yield measured
    if extras:
        stacked = copy.deepcopy(base)
        stack_norms(stacked)
        yield row("eager, stacked", training_step(stacked, x, y, device), peak=True)
        yield compiled_row("r-o, stacked", stacked, "reduce-overhead")[0]
        model, compiled = graphed or (copy.deepcopy(base), None)  # the model's graphs reused where made
        optimizer_options = compile_options(backend, "reduce-overhead")
        yield compiled_row("r-o, opt. graph", model, "reduce-overhead", compiled, optimizer_options)[0]


def print_recurrent(row: dict) -> None:
    def fmt(value, pattern: str) -> str:
        return "" if value is None else pattern.format(value)
    print(f"{row['spec']:>24} {row['run']:>16} {row['ms']:8.1f}ms {row['images_per_second']:9.0f} "
          f"{row['vs_eager']:7.3f} {fmt(row['gpu_busy'] and 100 * row['gpu_busy'], '{:6.1f}%'):>7} "
          f"{fmt(row['peak_mb'], '{:7.0f}MB'):>9} {fmt(row['compile_s'], '{:7.1f}s'):>8}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--recurrent-only", action="store_true", help="skip the ResNets")
    parser.add_argument("--resnet-modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"],
                        help="the ResNets eager, compiled or both (default)")
    parser.add_argument("--specs", nargs="+", default=list(RECURRENT), choices=list(RECURRENT))
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    parser.add_argument("--extras", action="store_true", help="also stacked per-step norms and a compiled "
                                                               "optimizer step (issue 16's open choices)")
    parser.add_argument("--backend", help="compile with this Dynamo backend instead of Inductor's modes "
                                          "(aot_eager: a dry run of the code paths)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: the GPU benchmark is skipped (try --device cpu --quick for a dry run)")
        return
    torch.backends.cudnn.benchmark = True
    info = machine()
    roof = matmul_rate(args.device, 1024 if args.quick else 8192)
    print(f"machine: {info.get('gpu', info['cpu'])}; dense bf16 matmul: {roof / 1e12:.1f} TFLOP/s")
    repeats, warmup = (3, 1) if args.quick else (20, 5)
    rows = []
    print(f"{'model':>22} {'mode':>8} {'ours':>9} {'reference':>10} {'ratio':>6} {'TFLOP/s':>8} {'roofline':>8}"
          f" {'compile':>8}")
    for name, ours, reference, batch, size in ([] if args.recurrent_only else cases(args.device, args.quick)):
        x = torch.randn(batch, 3, size, size, device=args.device).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, ours.spec.readout.head.classes, (batch,), device=args.device)
        flops = step_flops(ours, x, y, args.device)
        for mode in args.resnet_modes:
            compile_s = 0.0
            ours_run, reference_run = ours, reference
            if mode == "compiled":
                start = time.perf_counter()
                options = compile_options(args.backend, None)
                ours_run = torch.compile(ours, fullgraph=True, **options)
                training_step(ours_run, x, y, args.device)()
                sync(args.device)
                compile_s = time.perf_counter() - start
                if reference is not None:
                    reference_run = torch.compile(reference, fullgraph=True, **options)
                    training_step(reference_run, x, y, args.device)()
            contenders = {"ours": training_step(ours_run, x, y, args.device)}
            if reference is not None:
                contenders["reference"] = training_step(reference_run, x, y, args.device)
            times = interleaved(contenders, repeats, warmup, args.device)
            rate = flops / (ms(times["ours"]) / 1e3)
            row = {"model": name, "mode": mode, "ours_ms": ms(times["ours"]), "flops": flops,
                   "tflops": rate / 1e12, "roofline": rate / roof, "compile_s": compile_s}
            if reference is not None:
                row.update(reference_ms=ms(times["reference"]), ratio=median_ratio(times, "ours", "reference"))
            rows.append(row)
            print(f"{name:>22} {mode:>8} {row['ours_ms']:7.1f}ms "
                  f"{row.get('reference_ms', float('nan')):8.1f}ms {row.get('ratio', float('nan')):6.3f} "
                  f"{row['tflops']:8.2f} {100 * row['roofline']:7.1f}% {compile_s:7.1f}s", flush=True)
            # Written after every row, so a run stopped at its time limit keeps what it measured.
            write_json(args.json, {"gpu": rows, "device": args.device, "matmul_tflops": roof / 1e12}, say=False)
    recurrent: list[dict] = []
    print(f"{'spec':>24} {'run':>16} {'step':>10} {'img/s':>9} {'vs eager':>7} {'GPU busy':>7} {'peak':>9} "
          f"{'compile':>8}")
    for spec in args.specs:
        batch, size = (8, 32) if args.quick else RECURRENT[spec]
        for row in recurrent_rows(spec, batch, size, args.device, tuple(args.modes), args.backend, repeats, warmup,
                                  args.extras):
            recurrent.append(row)
            print_recurrent(row)
            write_json(args.json, {"gpu": rows, "recurrent": recurrent, "device": args.device,
                                   "matmul_tflops": roof / 1e12}, say=False)
    if args.json:
        print(f"wrote {args.json} (after every row)")


if __name__ == "__main__":
    main()
