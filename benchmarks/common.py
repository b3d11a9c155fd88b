"""What the benchmark scripts share: interleaved timing, the machine's description, JSON output."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from cortexgraph.atomic import atomic_path


class Operations(TorchDispatchMode):
    """Counts the ATen operations that compute while it is on (on a GPU each is a kernel launch); views are
    free. Exact and the same on every machine: benchmarks/kernels.py and tests/test_model.py count with it."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += not func.is_view
        return func(*args, **(kwargs or {}))


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def sync(device: str | torch.device = "cpu") -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(contenders: dict[str, Callable[[], Any]], repeats: int, warmup: int,
                device: str | torch.device = "cpu") -> dict[str, list[float]]:
    """Time each contender `repeats` times, one after another in each repeat (alternating which goes
    first), after `warmup` untimed rounds; returns the seconds of every run. On the CPU the clock is the
    process's CPU time (run with one thread: what other processes on a shared machine do is not counted);
    on a GPU, wall time after synchronising."""
    names = list(contenders)
    clock = time.process_time if torch.device(device).type == "cpu" else time.perf_counter
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = clock()
            contenders[name]()
            sync(device)
            times[name].append(clock() - start)
    return times


def median_ratio(times: dict[str, list[float]], ours: str, reference: str) -> float:
    """The median over repeats of ours / reference (each repeat's pair ran back to back)."""
    return statistics.median(a / b for a, b in zip(times[ours], times[reference]))


def ratio_range(times: dict[str, list[float]], ours: str, reference: str) -> tuple[float, float]:
    """The smallest and largest of the per-repeat ratios ours / reference."""
    ratios = [a / b for a, b in zip(times[ours], times[reference])]
    return min(ratios), max(ratios)


def ms(seconds: list[float]) -> float:
    return 1e3 * statistics.median(seconds)


def write_json(path: str | None, payload: dict[str, Any], say: bool = True) -> None:
    """`payload` and the machine into `path` (nothing without one), whole or not at all (a script stopped
    while it writes keeps the file before); `say`: print that it did."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
        if say:
            print(f"wrote {path}")


def forward(model: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def run():
        model.eval()
        with torch.no_grad():
            return model(x)
    return run


def forward_backward(model: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def run():
        model.train()
        model(x).sum().backward()
        model.zero_grad(set_to_none=True)
    return run


class HandWrittenLoop(nn.Module):
    """What a researcher would write by hand for the 1-state shared residual network:
    h = stem(x); for t: h = h + conv2(relu(bn2[t](conv1(relu(bn1[t](h)))))); head(h).
    Built from a compiled model's modules, so both compute the same thing with the same weights."""

    def __init__(self, model: nn.Module, area: str = "S"):
        super().__init__()
        block = model.weight_set(f"edges.{area}->{area}")
        steps = sorted(int(name[1:]) for name, _ in block.bn1.named_children())
        self.stem = model.prenet
        self.conv1, self.conv2 = block.conv1, block.conv2
        self.bn1 = nn.ModuleList(getattr(block.bn1, f"t{t}") for t in steps)
        self.bn2 = nn.ModuleList(getattr(block.bn2, f"t{t}") for t in steps)
        self.head = model.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for bn1, bn2 in zip(self.bn1, self.bn2):
            h = h + self.conv2(F.relu(bn2(self.conv1(F.relu(bn1(h))))))
        return self.head(h)


class StreamLoop(nn.Module):
    """What a researcher would write by hand for a bundled ConvRNN stream (`convrnn/*-stream`): every area's
    cell runs at every step on the conv of the area below (at the previous step, PyTorchTNN's convention:
    the conv of zeros where it has no value yet, `silence: computed`; or at the same step: the leaky
    stream's sweep) plus, where the spec has one,
    the area's lateral conv of its previous value. It skips the updates the model's Plan prunes (nothing
    reads them), so both do the same work. Built from a compiled model's modules: the same weights."""

    AREAS = ("V1", "V2", "V4", "IT")

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.steps = model, model.spec.steps
        self.shapes = {a: model.plan.shapes[a] for a in self.AREAS}
        self.same_step = model.plan.edges["V1->V2"].delay == 0
        self.lateral = "V1->V1" in model.plan.edges
        self.updates = {(u.area, u.step) for u in model.plan.updates}
        self.computed = model.spec.silence == "computed"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        h: dict[str, Any] = {}
        memory: dict[str, Any] = {}
        for t in range(self.steps + 1):
            new: dict[str, Any] = {}
            for i, area in enumerate(self.AREAS):
                if (area, t) not in self.updates:
                    continue
                below = self.AREAS[i - 1] if i else None
                source = x if below is None else (new if self.same_step else h).get(below)
                if source is None and self.computed:  # the zeros the area below holds before it has a value
                    source = x.new_zeros((x.shape[0], *self.shapes[below]))
                if source is None:
                    d = x.new_zeros((x.shape[0], *self.shapes[area]))
                else:
                    d = m.edges[f"{below or 'input'}->{area}"](source, t)
                if self.lateral and area in h:
                    d = d + m.edges[f"{area}->{area}"](h[area], t)
                new[area], memory[area] = m.cells[area](d, h.get(area), memory.get(area), t)
            h.update(new)
        return m.head(h["IT"])
