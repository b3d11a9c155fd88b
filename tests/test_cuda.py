"""On a GPU: training with bf16 autocast and channels-last, resuming, and a compiled model.

Skipped where there is no CUDA GPU (see conftest.py); `pytest -m cuda` runs just these.
"""

import copy
import json
from pathlib import Path

import pytest
import torch

from cortexgraph import build
from cortexgraph.checkpoint import read_checkpoint
from cortexgraph.train import TrainConfig, train

from .helpers import train_until_the_first_checkpoint

pytestmark = pytest.mark.cuda


def digits(out: Path, **changes) -> TrainConfig:
    settings = dict(spec="demo/frnn3-digits", data="digits", out=str(out), epochs=2, batch_size=64,
                    optimizer="adamw", lr=3e-3, progress=False, device="cuda")
    return TrainConfig(**{**settings, **changes})


def test_training_runs_in_bf16_and_channels_last_on_the_gpu(tmp_path):
    result = train(digits(tmp_path / "run", epochs=3))
    settings = json.loads((Path(result["out"]) / "metrics.json").read_text())["run"]["settings"]
    assert settings["device"] == "cuda:0" and settings["amp"] and settings["channels_last"]
    assert result["test_acc"] > 0.8  # three epochs on the digits: 97.5% on an H200 (CLI, the same settings)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, monkeypatch):
    train(digits(tmp_path / "whole"))
    train_until_the_first_checkpoint(digits(tmp_path / "split"), monkeypatch)
    train(digits(tmp_path / "split", resume=True))
    whole = read_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    split = read_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert split["epoch"] == 2 and [e["epoch"] for e in split["metrics"]] == [1, 2]
    # cuDNN's backward kernels may add in another order from run to run: equal to rounding, not bits.
    for name, value in whole["model"].items():
        torch.testing.assert_close(split["model"][name], value, rtol=1e-3, atol=1e-3, msg=prefixed(name))


def test_a_run_begun_on_the_cpu_resumes_on_the_gpu_with_fused_adamw(tmp_path, monkeypatch):
    """The CPU's AdamW keeps its step counters on the CPU; the fused one on CUDA needs them on the GPU
    (pytorch#104767): the resumed optimizer must load them for its own kernels."""
    train_until_the_first_checkpoint(digits(tmp_path / "run", device="cpu", amp=False), monkeypatch)
    result = train(digits(tmp_path / "run", resume=True))  # the device and its kernels may change on resume
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]


@pytest.fixture
def float32_convs():
    """cuDNN convolutions in true float32: under TF32 (torch's default for cuDNN) eager and compiled
    models may pick kernels that round at 1e-3, and a mismatch would say nothing about the compiled graph."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def prefixed(name: str):
    """An assert_close message that names the tensor and keeps torch's account of the mismatch."""
    return lambda detail: f"{name}: {detail}"


@pytest.mark.parametrize("call", [{}, {"readout": "all"}, {"steps": 4}])
def test_a_compiled_model_matches_the_eager_one(call, float32_convs):
    model = build("demo/frnn3-digits").cuda().train()
    x = torch.randn(8, 1, 16, 16, device="cuda")
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, fullgraph=True)
    out, expected = compiled(x, **call), eager(x, **call)
    if isinstance(expected, dict):
        out, expected = torch.stack(list(out.values())), torch.stack(list(expected.values()))
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    out.square().sum().backward()
    expected.square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), eager.parameters()):
        if q.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-3, msg=prefixed(name))


def test_a_skipped_step_leaves_the_running_statistics_finite_on_the_gpu(tmp_path, monkeypatch):
    from .helpers import poison_one_training_image

    poison_one_training_image(monkeypatch)  # one pixel of one training image
    result = train(digits(tmp_path / "run", epochs=3, on_nonfinite="skip"))
    assert [e["skipped_steps"] for e in result["epochs"]] == [1, 1, 1]  # the poisoned image, once an epoch
    state = read_checkpoint(result["checkpoint"])["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert result["test_acc"] > 0.8


def test_training_compiled_as_cuda_graphs_learns_and_records_its_mode(tmp_path):
    result = train(digits(tmp_path / "run", epochs=3, compile="reduce-overhead"))
    settings = read_checkpoint(result["checkpoint"])["metrics"][-1]["settings"]
    assert settings["compile"] == "reduce-overhead" and settings["device"] == "cuda:0"
    assert result["test_acc"] > 0.8


def test_a_checkpointed_step_on_the_gpu_moves_the_statistics_once(float32_convs):
    """The recomputation's norms update scratch statistics (frozen_statistics): on the GPU too, the step's
    gradients are the plain step's and its running statistics moved once."""
    from .helpers import randomize_norms

    torch.manual_seed(0)
    plain = build("demo/frnn3-digits").cuda().train()
    randomize_norms(plain)
    saving = copy.deepcopy(plain)
    saving.checkpoint = True
    x = torch.randn(8, 1, 16, 16, device="cuda")
    for model in (plain, saving):
        model(x).square().sum().backward()
    for (name, p), q in zip(plain.named_parameters(), saving.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=prefixed(name))
    for (name, a), b in zip(plain.named_buffers(), saving.buffers()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7, msg=prefixed(name))
