"""Peak training memory as the number of steps grows, with and without activation checkpointing.

    python benchmarks/memory.py --quick            # 8 and 32 steps (part of `make bench`)
    python benchmarks/memory.py                    # 8, 16, 32 and 64 steps
    python benchmarks/memory.py --device cuda      # on a GPU: torch.cuda.max_memory_allocated

The 1-state shared residual network (liao2016/srn1-cifar: 64 channels at
32x32), batch 16, one training step (forward, backward, SGD). On the CPU each
configuration runs in a fresh process and reports how much its peak resident
memory rose during the step (getrusage's ru_maxrss: real memory, allocator
included, with glibc told to return freed tensors to the system at once); on
CUDA, the allocator's peak. Each run also checks that the loss
and every gradient equal those without checkpointing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
from common import machine, write_json

from cortexgraph import build

# glibc keeps freed blocks below its (self-raising) mmap threshold inside the heap, where they count as
# resident long after PyTorch has freed them; a fixed threshold of 128 kB hands every tensor-sized
# block straight back to the system, so the peak resident memory follows the memory really in use.
CHILD_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}


def child(steps: int, checkpoint: bool, device: str, batch: int) -> dict:
    torch.manual_seed(0)
    model = build("liao2016/srn1-cifar", steps=steps).to(device).train()
    reference = build("liao2016/srn1-cifar", steps=steps).to(device).train()
    reference.load_state_dict(model.state_dict())
    model.checkpoint = checkpoint
    x = torch.randn(batch, 3, 32, 32, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.max_memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    loss = model(x).square().mean()
    loss.backward()
    optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    seconds = time.perf_counter() - start
    # The same step without checkpointing must give the same loss and gradients (checked after measuring).
    reference_loss = reference(x).square().mean()
    reference_loss.backward()
    same = torch.equal(loss, reference_loss) and all(
        (a.grad is None and b.grad is None) or torch.equal(a.grad, b.grad)
        for a, b in zip(reference.parameters(), model.parameters()))
    return {"steps": steps, "checkpoint": checkpoint, "peak_mb": peak / 2**20, "seconds": seconds,
            "same_loss_and_gradients": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--child", nargs=2, metavar=("STEPS", "CHECKPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1] == "1", args.device, args.batch)))
        return
    info = machine()
    print(f"machine: {info['cpu']}, {info['threads']} threads; srn1-cifar, batch {args.batch}, {args.device}")
    print(f"{'steps':>5} {'plain':>10} {'checkpointed':>13} {'reduction':>9} {'time cost':>9}  same gradients")
    rows = []
    for steps in ((8, 32) if args.quick else (8, 16, 32, 64)):
        pair = []
        for checkpoint in (False, True):
            done = subprocess.run([sys.executable, __file__, "--child", str(steps), str(int(checkpoint)),
                                   "--device", args.device, "--batch", str(args.batch)],
                                  capture_output=True, text=True, check=True, env=CHILD_ENV)
            pair.append(json.loads(done.stdout.strip().splitlines()[-1]))
        plain, saved = pair
        row = {"steps": steps, "plain_mb": plain["peak_mb"], "checkpointed_mb": saved["peak_mb"],
               "reduction": plain["peak_mb"] / saved["peak_mb"], "time_cost": saved["seconds"] / plain["seconds"],
               "same_loss_and_gradients": saved["same_loss_and_gradients"]}
        rows.append(row)
        print(f"{steps:>5} {row['plain_mb']:8.0f}MB {row['checkpointed_mb']:11.0f}MB {row['reduction']:8.1f}x "
              f"{row['time_cost']:8.2f}x  {row['same_loss_and_gradients']}", flush=True)
    write_json(args.json, {"memory": rows, "device": args.device, "batch": args.batch})


if __name__ == "__main__":
    main()
