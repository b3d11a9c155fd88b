"""One process or many: `torchrun --nproc_per_node N -m cortexgraph train ...` runs DDP.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is
a no-op for a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """This process's place in the run torchrun started (one process when torchrun did not)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return World()
    return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))


def device_for(requested: str, world: World, what: str = "training") -> torch.device:
    """The device `--device` names, made current; `cuda` gets an index (torch.cuda.set_device wants one).

    `auto` is CUDA where there is a GPU, else the CPU. `cuda` is the current GPU in a single
    process and the GPU of LOCAL_RANK under torchrun, where `cuda:N` must be that GPU too."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(f"--device {requested!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {requested}: {what} runs on cpu, cuda or cuda:N (or auto), not {device.type}")
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"--device {requested} asked for, but CUDA is not available here; use --device cpu")
    if device.index is None:
        device = torch.device("cuda", world.local_rank if world.distributed else torch.cuda.current_device())
    elif world.distributed and device.index != world.local_rank:
        raise ValueError(f"--device {requested}: under torchrun each process uses the GPU of its LOCAL_RANK "
                         f"(this one cuda:{world.local_rank}); pass --device cuda")
    count = torch.cuda.device_count()
    if device.index >= count:
        raise ValueError(f"--device {device} asked for, but this machine has {count} GPU(s): "
                         f"cuda:0 to cuda:{count - 1}")
    torch.cuda.set_device(device)
    return device


def start(world: World, device: torch.device) -> bool:
    """Join the process group torchrun set up (nothing to do for one process): NCCL on GPUs, gloo on CPUs.
    True where this call joined it, and so its caller leaves it (a sweep's worker joins once for its trials)."""
    if world.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return True
    return False


def all_sum(values: list[float], world: World, device: torch.device) -> list[float]:
    """Sum numbers over all processes (counts of correct answers, losses)."""
    if not world.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def checksums_agree(model: torch.nn.Module, world: World, device: torch.device) -> tuple[bool, float]:
    """Whether every process holds the same parameters and buffers (a checksum over all of them)."""
    with torch.no_grad():
        total = sum(float(t.double().sum()) + float(t.double().abs().sum()) * 1e-3
                    for t in model.state_dict().values() if t.is_floating_point())
    if not world.distributed:
        return True, total
    mine = torch.tensor([total], dtype=torch.float64, device=device)
    gathered = [torch.zeros_like(mine) for _ in range(world.size)]
    dist.all_gather(gathered, mine)
    values = [float(g) for g in gathered]
    return max(values) - min(values) <= 1e-9 * max(1.0, abs(values[0])), total


def gather_lists(items: list[Any], world: World) -> list[Any]:
    """Every process's `items`, concatenated in rank order (on every process)."""
    if not world.distributed:
        return items
    gathered: list[list[Any]] = [[] for _ in range(world.size)]
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


def from_main(value: Any, world: World) -> Any:
    """The main process's `value` (any picklable object), on every process."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def share_buffers(model: torch.nn.Module, world: World) -> None:
    """Give every process rank 0's buffers (BatchNorm's running statistics).

    DDP copies them from rank 0 before each training forward pass, but each
    process's last pass updates its own; evaluation and checkpoints want one set."""
    if world.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
