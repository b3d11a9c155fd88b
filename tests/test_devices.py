"""Device selection for training, on a CPU machine with CUDA mocked: auto, cuda, cuda:N, with and without torchrun."""

import pytest
import torch
from torch.cuda._utils import _get_device_index

from cortexgraph.train import distributed as dist


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has two GPUs; record what torch.cuda.set_device and init_process_group get."""
    calls = {"set_device": [], "backend": []}

    def set_device(device):
        # What the real one does first: a device without an index is refused
        # ("Expected a torch.device with a specified index or an integer").
        calls["set_device"].append(_get_device_index(device))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(dist.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist.dist, "init_process_group", lambda backend: calls["backend"].append(backend))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    return calls


def torchrun(monkeypatch, rank: int, size: int = 2) -> dist.World:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(size))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    return dist.world_from_env()


@pytest.mark.parametrize("requested, index", [("auto", 0), ("cuda", 0), ("cuda:0", 0), ("cuda:1", 1)])
def test_one_process_gets_an_indexed_gpu(gpus, requested, index):
    device = dist.device_for(requested, dist.world_from_env())
    assert device == torch.device("cuda", index)
    assert gpus["set_device"] == [index]


@pytest.mark.parametrize("requested", ["auto", "cuda", "cuda:1"])
def test_under_torchrun_each_process_takes_its_local_rank(gpus, monkeypatch, requested):
    world = torchrun(monkeypatch, rank=1)
    device = dist.device_for(requested, world)
    assert device == torch.device("cuda", 1)
    dist.start(world, device)
    assert gpus["set_device"] == [1] and gpus["backend"] == ["nccl"]


def test_under_torchrun_another_gpu_is_refused(gpus, monkeypatch):
    world = torchrun(monkeypatch, rank=1)
    with pytest.raises(ValueError, match=r"LOCAL_RANK \(this one cuda:1\); pass --device cuda"):
        dist.device_for("cuda:0", world)


def test_a_gpu_beyond_the_machine_is_refused(gpus):
    with pytest.raises(ValueError, match=r"cuda:5 asked for, but this machine has 2 GPU\(s\): cuda:0 to cuda:1"):
        dist.device_for("cuda:5", dist.World())


def test_cpu_runs_use_gloo_even_where_there_are_gpus(gpus, monkeypatch):
    world = torchrun(monkeypatch, rank=0)
    device = dist.device_for("cpu", world)
    dist.start(world, device)
    assert device == torch.device("cpu") and gpus["backend"] == ["gloo"] and gpus["set_device"] == []


def test_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dist.device_for("auto", dist.World()) == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available here; use --device cpu"):
        dist.device_for("cuda", dist.World())
    with pytest.raises(ValueError, match="'gpu' is not a device; use auto, cpu, cuda or cuda:N"):
        dist.device_for("gpu", dist.World())


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_one_process_keeps_the_gpu_made_current_before_it(gpus, monkeypatch, requested):
    """`cuda` in a single process is the current GPU (torch.cuda.set_device or CUDA_VISIBLE_DEVICES chose it)."""
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert dist.device_for(requested, dist.world_from_env()) == torch.device("cuda", 1)
    assert gpus["set_device"] == [1]
