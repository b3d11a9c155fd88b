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
- Edges fused: calls into one area at one step that are linear convolutions of one kernel and stride on
  inputs of one size (no norm, activation or pooling after them) could run as one convolution of the
  concatenated inputs and weights. How many such groups each bundled spec's forward holds, and the
  operations of one group (BLT's V2 drive: bottom-up and lateral) run apart and fused over a pass of
  1 to 10 calls (the weights, shared across steps, concatenated once per pass).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import Operations, machine, write_json
from torch import nn

from cortexgraph import build
from cortexgraph.bundled import bundled_specs
from cortexgraph.ops.layers import ConvNormAct
from cortexgraph.ops.norms import NoNorm, StepNorm

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


def linear_conv(module: nn.Module) -> tuple | None:
    """What must agree for calls to fuse (kernel, stride, padding, dilation, groups), or None for a call
    that is not a bare convolution (a norm, an activation or a pool after it keeps it apart)."""
    if not (isinstance(module, ConvNormAct) and isinstance(module.norm, NoNorm)
            and isinstance(module.act, nn.Identity) and isinstance(module.pool, nn.Identity)):
        return None
    c = module.conv
    return c.kernel_size, c.stride, c.padding, c.dilation, c.groups


def fusable(name: str) -> dict:
    """The calls of one forward, and the groups of two or more that could run as one convolution."""
    model = build(name)
    plan = model.plan_for()
    calls = groups = saved = 0
    for update in (u for updates in plan.schedule for u in updates):
        calls += len(update.calls)
        alike: dict[tuple, int] = {}
        for call in update.calls:
            module = model._module_of(call.weights)
            conv = linear_conv(module)
            if conv is not None:
                size = module.pool_input(torch.zeros(1, *plan.shapes[call.source])).shape[2:]
                key = (conv, tuple(size), call.edge.modulating)  # a modulating call is summed apart
                alike[key] = alike.get(key, 0) + 1
        groups += sum(n > 1 for n in alike.values())
        saved += sum(n - 1 for n in alike.values())
    return {"spec": name, "calls": calls, "groups": groups, "calls_saved": saved}


def fused_drive(calls: tuple[int, ...] = (1, 2, 4, 8, 10)) -> list[dict]:
    """BLT's V2 drive, bottom-up (pooled V1) plus lateral (V2), at batch 2, over `calls` calls of one
    forward pass (its weights are shared across steps): apart, then as one conv, the weights concatenated
    once per pass and each call's inputs at every call; forward and backward operations for each count."""
    torch.manual_seed(0)
    model = build("blt/blt")
    up, lateral = model.weight_set("edges.V1->V2"), model.weight_set("edges.V2->V2")
    rows = []
    for count in calls:
        v1 = [torch.randn(2, 64, 64, 64, requires_grad=True) for _ in range(count)]
        v2 = [torch.randn(2, 128, 32, 32, requires_grad=True) for _ in range(count)]
        with torch.no_grad():  # the two compute one sum (to float rounding), or the counts compare nothing
            torch.testing.assert_close(drive_pass(up, lateral, v1, v2, fused=True),
                                       drive_pass(up, lateral, v1, v2, fused=False), rtol=1e-4, atol=1e-4)
        counts = {}
        for fused in (False, True):
            for leaf in (*model.parameters(), *v1, *v2):  # each pass counted from no gradients, as a step's
                leaf.grad = None
            counts["fused" if fused else "apart"] = counted(drive_step, up, lateral, v1, v2, fused)
        rows.append({"calls": count, **counts})
    return rows


def drive_step(*args) -> None:
    drive_pass(*args).sum().backward()


def drive_pass(up: nn.Module, lateral: nn.Module, v1: list, v2: list, fused: bool) -> torch.Tensor:
    """The summed drive of calls on (v1[i], v2[i]): two convolutions each, or one of the concatenations."""
    if not fused:
        return total([up(a, 0) + lateral(b, 0) for a, b in zip(v1, v2)])
    w = torch.cat([up.conv.weight, lateral.conv.weight], 1)
    return total([F.conv2d(torch.cat([up.pool_input(a), b], 1), w, padding=1) for a, b in zip(v1, v2)])


def total(terms: list[torch.Tensor]) -> torch.Tensor:
    """The sum of `terms` in n - 1 additions (Python's sum adds a 0 first)."""
    return sum(terms[1:], terms[0])


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
    print(f"\n{'spec':>24} {'calls':>6} {'fusable groups':>15} {'calls saved':>12}")
    fusion = []
    for name in bundled_specs():
        row = fusable(name)
        fusion.append(row)
        if row["groups"]:
            print(f"{name:>24} {row['calls']:6} {row['groups']:15} {row['calls_saved']:12}")
    print(f"{len(fusion) - sum(bool(r['groups']) for r in fusion)} other bundled specs: none")
    drive = fused_drive()
    print("One group (BLT's V2 drive), forward and backward operations over a pass of n calls: " + ", ".join(
        f"n={r['calls']}: {r['apart']} apart, {r['fused']} fused" for r in drive))
    write_json(args.json, {"checkpointing": recompute, "stacked_norms": stacked,
                           "fusable_edges": fusion, "fused_drive": drive})


if __name__ == "__main__":
    main()
