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
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision
from common import interleaved, machine, median_ratio, ms, sync, write_json
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


def training_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: str):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
            loss = loss_fn(model(x).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


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
    frnn_size, frnn_batch = (32, 8) if quick else (32, 256)
    out.append((f"frnn4-cifar {frnn_batch}x{frnn_size}", build("liao2016/frnn4-cifar"), None, frnn_batch, frnn_size))
    for _, ours, reference, _, _ in out:
        for model in (ours, reference):
            if model is not None:
                model.to(device, memory_format=torch.channels_last).train()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="FILE")
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
    for name, ours, reference, batch, size in cases(args.device, args.quick):
        x = torch.randn(batch, 3, size, size, device=args.device).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, ours.spec.readout.head.classes, (batch,), device=args.device)
        flops = step_flops(ours, x, y, args.device)
        for mode in ("eager", "compiled"):
            compile_s = 0.0
            ours_run, reference_run = ours, reference
            if mode == "compiled":
                start = time.perf_counter()
                ours_run = torch.compile(ours, fullgraph=True)
                training_step(ours_run, x, y, args.device)()
                sync(args.device)
                compile_s = time.perf_counter() - start
                if reference is not None:
                    reference_run = torch.compile(reference, fullgraph=True)
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
            write_json(args.json, {"gpu": rows, "device": args.device, "matmul_tflops": roof / 1e12})


if __name__ == "__main__":
    main()
