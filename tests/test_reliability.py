"""Runs that meet trouble fail clearly and lose nothing: non-finite values, full disks, hostile files."""

import errno
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

import cortexgraph.checkpoint as checkpoints
from cortexgraph import OpContext, SpecError, analyze, build, load_spec, register_op
from cortexgraph.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from cortexgraph.ops.registry import unregister_op
from cortexgraph.train import TrainConfig, TrainingError, train

from .helpers import Exploit
from .test_train import TINY, config


class Poison(nn.Module):
    """An op that turns non-finite at one step, in its output or only in its gradient."""

    mode = "value"
    calls = 0
    first_only = False

    def __init__(self, ctx: OpContext):
        super().__init__()
        self.conv = nn.Conv2d(ctx.in_channels, ctx.out_channels, 3, padding=1)

    def forward(self, x, step):
        out = self.conv(x)
        Poison.calls += 1
        bad = step == 2 and (not Poison.first_only or Poison.calls <= 3)
        if bad and Poison.mode == "value":
            return out * float("nan")
        if bad and Poison.mode == "gradient":
            return _NanGradient.apply(out)
        return out


class _NanGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


POISONED = TINY.replace("B: {A: up, B: residual}", "B: {A: up, B: poison}")


@pytest.fixture
def poisoned(tmp_path):
    register_op("poison", Poison)
    Poison.mode, Poison.calls, Poison.first_only = "value", 0, False
    path = tmp_path / "poisoned.yaml"
    path.write_text(POISONED)
    yield str(path)
    unregister_op("poison")


def test_a_nan_stops_training_saying_where_it_first_appeared(poisoned, tmp_path):
    with pytest.raises(TrainingError) as caught:
        train(config(poisoned, tmp_path / "run"))
    message = str(caught.value)
    assert message.startswith("the loss is nan; it first appears at step 2, area B, edge B->B (epoch 1, batch 1)")
    assert "--on-nonfinite skip" in message and "\n" not in message


def test_non_finite_gradients_name_their_edge(poisoned, tmp_path):
    Poison.mode = "gradient"
    where = r"gradients are not finite; they start at step 2, area B, edge B->B \(epoch 1"
    with pytest.raises(TrainingError, match=where):
        train(config(poisoned, tmp_path / "run"))


def test_skipping_non_finite_steps_goes_on(poisoned, tmp_path):
    Poison.first_only = True  # only the first batch's forward pass is poisoned
    result = train(config(poisoned, tmp_path / "run", on_nonfinite="skip"))
    assert [e["skipped_steps"] for e in result["epochs"]] == [1, 0]
    assert all(torch.isfinite(t).all() for t in read_checkpoint(result["checkpoint"])["model"].values())


def test_gradient_clipping_bounds_the_norm_each_step_applies(tmp_path, tiny, monkeypatch):
    """The optimizer sees gradients of total norm at most the bound; unclipped, they are above it."""
    norms = []
    real_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        norms.append(float(nn.utils.get_total_norm([p.grad for g in self.param_groups for p in g["params"]
                                                    if p.grad is not None])))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    train(config(tiny, tmp_path / "free"))
    free, norms[:] = list(norms), []
    result = train(config(tiny, tmp_path / "clipped", clip_grad=0.05))
    assert min(free) > 0.05 and len(norms) == len(free)
    assert max(norms) <= 0.05 * (1 + 1e-5)
    assert result["epochs"][-1]["train_loss"] < 10


def test_a_full_disk_fails_before_training(tmp_path, tiny, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(TrainingError, match=r"has 0.0 MB free; a checkpoint of this model needs about"):
        train(config(tiny, tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    # the bound: three checkpoints' worth of the model's tensors and a megabyte (writing one beside the last)
    need = 3 * sum(t.numel() * t.element_size() for t in build(tiny).state_dict().values()) + (1 << 20)
    for free, refused in ((need - 1, True), (need, False)):
        monkeypatch.setattr(shutil, "disk_usage", lambda path, f=free: shutil._ntuple_diskusage(10**9, 10**9 - f, f))
        if refused:
            with pytest.raises(TrainingError) as caught:
                train(config(tiny, tmp_path / "bound", epochs=1, limit_batches=1))
            assert str(caught.value).endswith(f"has {free / 1e6:.1f} MB free; a checkpoint of this model needs "
                                              f"about {need / 1e6:.1f} MB")
        else:
            assert train(config(tiny, tmp_path / "bound", epochs=1, limit_batches=1))["epochs"]


def test_a_disk_filling_up_mid_run_keeps_the_last_good_checkpoint(tmp_path, tiny, monkeypatch):
    real_save = torch.save
    calls = []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:
            with open(f, "wb") as partial:
                partial.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoints.torch, "save", save)
    with pytest.raises(TrainingError) as caught:
        train(config(tiny, tmp_path / "run", epochs=3))
    assert str(caught.value).startswith("cannot write the checkpoint of epoch 2 in")
    assert "No space left on device" in str(caught.value) and "still holds epoch 1" in str(caught.value)
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    assert not list((tmp_path / "run").glob(".*.tmp"))  # the half-written file is gone


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "cortexgraph-checkpoint", "version": 1, "spec": {}, "model": Exploit(tmp_path / "ran")},
                    f, protocol=2)
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint"):
        build(str(path))
    assert not (tmp_path / "ran").exists()


def test_the_spec_inside_a_checkpoint_is_validated_again(tmp_path, tiny):
    spec = load_spec(tiny).to_dict()
    spec["steps"] = 0
    path = tmp_path / "bad.pt"
    save_checkpoint(path, spec=spec, model={})
    with pytest.raises(SpecError, match=r"bad.pt \(its spec\):1:1: steps: must be > 0"):
        build(str(path))


def test_foreign_files_are_not_checkpoints(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="is not a cortexgraph checkpoint"):
        build(str(path))


def test_ops_named_by_import_path_need_the_users_permission(tmp_path, monkeypatch):
    module = tmp_path / "lab_ops.py"
    module.write_text(f"import cortexgraph, sys\nfrom {__name__} import Poison\n"
                      "cortexgraph.register_op('lab_poison', Poison, replace=True)\n"
                      "sys.modules[__name__].imported = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = TINY.replace("B: {A: up, B: residual}", "B: {A: up, B: 'lab_ops:lab_poison'}")
    with pytest.raises(SpecError, match="looks like an import path; specs never import code unless allowed"):
        analyze(load_spec(text))
    import sys

    assert "lab_ops" not in sys.modules
    model = build(text, allow_imports=True)
    assert type(model.weight_set("edges.B->B")).__name__ == "Poison"
    with pytest.raises(SpecError, match="cannot import 'no_such_module'"):
        analyze(load_spec(text.replace("lab_ops:", "no_such_module:")), allow_imports=True)
    unregister_op("lab_poison")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


def test_train_config_refuses_nonsense():
    for bad in (dict(epochs=0), dict(optimizer="adam"), dict(clip_grad=-1), dict(on_nonfinite="ignore")):
        with pytest.raises(ValueError):
            TrainConfig(spec="x", **bad)


@pytest.mark.parametrize("setting, bad, good, message", [
    ("epochs", 0, 1, "epochs must be at least 1"), ("batch_size", 0, 1, "batch size must be at least 1"),
    ("lr", 0.0, 1e-9, "learning rate must be positive"),
    ("label_smoothing", 1.0, 0.999, "label smoothing is in [0, 1)"),
    ("label_smoothing", -0.001, 0.0, "label smoothing is in [0, 1)"),
    ("clip_grad", 0.0, 1e-9, "gradient clipping needs a positive norm"), ("workers", -1, 0, "workers must be >= 0"),
    ("step_size", 0, 1, "the step schedule's step size is at least 1 epoch"),
    ("gamma", 0.0, 1e-9, "the step schedule's gamma must be positive"),
    ("momentum", -0.001, 0.0, "momentum must be >= 0"), ("weight_decay", -0.001, 0.0, "weight decay must be >= 0"),
    ("seed", 2**32, 2**32 - 1, "the seed must be in [0, 2**32)"), ("seed", -1, 0, "the seed must be in [0, 2**32)"),
    ("limit_batches", 0, 1, "limit_batches must be at least 1 (or None for every batch)"),
    ("out", " ", "o", "the output folder is an empty name"),
])
def test_each_training_setting_is_refused_past_its_bound_and_taken_at_it(setting, bad, good, message):
    with pytest.raises(ValueError) as caught:
        TrainConfig(spec="x", **{setting: bad})
    assert message in str(caught.value)
    assert getattr(TrainConfig(spec="x", **{setting: good}), setting) == good


def test_nothing_but_whole_files_appear(tmp_path):
    from cortexgraph.atomic import atomic_path

    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        Path(tmp).write_bytes(b"new but unfinished")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("optimizer, lr, weight_decay", [("sgd", 0.1, 5e-4), ("adamw", 1e-3, 0.05)])
def test_the_optimizer_s_defaults_are_the_documented_ones(optimizer, lr, weight_decay):
    config = TrainConfig(spec="x", optimizer=optimizer)
    assert (config.lr, config.weight_decay) == (lr, weight_decay)
    assert (TrainConfig(spec="x", optimizer=optimizer, lr=0.5, weight_decay=0.0).lr, config.momentum) == (0.5, 0.9)
