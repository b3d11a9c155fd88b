"""Operations per training step: what a GPU launches one kernel for, counted on the CPU.

    python benchmarks/kernels.py            # a few seconds
    python benchmarks/kernels.py --json out.json

A recurrent spec's step is hundreds of small calls, and on a GPU each is a kernel launch the CPU must
issue (issue 16: frnn4-cifar kept an H200 busy less than half of its step). The count is exact and the
same on every machine: every ATen operation dispatched that computes (views are free), batch 2.

- Activation checkpointing: a plain step, a checkpointed one, and one forward pass. A checkpointed
  step should cost at most one forward more (its recomputation).
- Per-step norms held as one module with stacked (steps, channels) parameters and statistics, each call
  indexing its step's row, against one BatchNorm module per step (what cortexgraph builds): the forward
  and backward operations, the parameter tensors, and the operations of an SGD step that loops over its
  tensors and of a foreach one (one call per operation for all tensors; on a GPU a kernel per chunk of them).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import Operations, machine, write_json
from torch import nn

from cortexgraph import build
from cortexgraph.ops.norms import StepNorm

SPECS = ("liao2016/frnn4-cifar", "liao2016/srn1-cifar", "cornet/cornet-s", "convrnn/lstm-stream")


def counted(run, *args) -> int:
    with Operations() as operations:
        run(*args)
    return operations.count


def train_step(model: nn.Module, x: torch.Tensor) -> None:
    model(x).sum().backward()


def checkpointing(name: str) -> dict:
    counts = {}
    for checkpoint in (False, True):
        torch.manual_seed(0)
        model = build(name, checkpoint=checkpoint).train()
        x = torch.randn(2, 3, *model.spec.input.size)
        with torch.no_grad():
            counts["forward"] = counted(model, x)
        counts["checkpointed" if checkpoint else "plain"] = counted(train_step, model, x)
    return {"spec": name, **counts}


class StackedNorm(nn.Module):
    """The alternative measured: a StepNorm's batch norms as one module of stacked rows."""

    def __init__(self, norms: StepNorm):
        super().__init__()
        each = [norms._modules[f"t{t}"] for t in norms.steps]
        self.row = {t: i for i, t in enumerate(norms.steps)}
        self.weight = nn.Parameter(torch.stack([n.weight.detach() for n in each]))
        self.bias = nn.Parameter(torch.stack([n.bias.detach() for n in each]))
        self.register_buffer("running_mean", torch.stack([n.running_mean for n in each]))
        self.register_buffer("running_var", torch.stack([n.running_var for n in each]))
        self.momentum, self.eps = each[0].momentum, each[0].eps

    def forward(self, x: torch.Tensor, step: int) -> torch.Tensor:
        i = self.row[step]
        return F.batch_norm(x, self.running_mean[i], self.running_var[i], self.weight[i], self.bias[i],
                            self.training, self.momentum, self.eps)


def stack_norms(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, StepNorm):
            setattr(module, name, StackedNorm(child))
        else:
            stack_norms(child)


def stacking(name: str) -> list[dict]:
    rows = []
    for stacked in (False, True):
        torch.manual_seed(0)
        model = build(name).train()
        if stacked:
            stack_norms(model)
        x = torch.randn(2, 3, *model.spec.input.size)
        looping, foreach = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=each)
                            for each in (False, True))
        model(x).sum().backward()
        for optimizer in (looping, foreach):
            optimizer.step()  # makes the momentum buffers
        model.zero_grad(set_to_none=True)  # the counted backward writes fresh gradients, as a training step's does
        rows.append({"spec": name, "norms": "stacked" if stacked else "a module per step",
                     "parameters": len(list(model.parameters())),
                     "forward_backward": counted(train_step, model, x),
                     "sgd_per_tensor": counted(looping.step), "sgd_foreach": counted(foreach.step)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    print(f"machine: {machine()['cpu']} (the counts do not depend on it)")
    print(f"{'spec':>24} {'forward':>8} {'plain step':>11} {'checkpointed':>13} {'extra / forward':>16}")
    recompute = []
    for name in SPECS:
        row = checkpointing(name)
        recompute.append(row)
        print(f"{name:>24} {row['forward']:8} {row['plain']:11} {row['checkpointed']:13} "
              f"{(row['checkpointed'] - row['plain']) / row['forward']:16.2f}")
    print(f"\n{'spec':>24} {'norms':>18} {'parameters':>10} {'forward+backward':>16} {'SGD per tensor':>14} "
          f"{'SGD foreach':>11}")
    stacked = []
    for name in ("liao2016/frnn4-cifar", "liao2016/srn1-cifar"):
        for row in stacking(name):
            stacked.append(row)
            print(f"{name:>24} {row['norms']:>18} {row['parameters']:10} {row['forward_backward']:16} "
                  f"{row['sgd_per_tensor']:14} {row['sgd_foreach']:11}")
    write_json(args.json, {"checkpointing": recompute, "stacked_norms": stacked})


if __name__ == "__main__":
    main()
