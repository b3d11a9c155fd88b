"""Training: outputs, checkpoints that rebuild the model, exact resume, data and output errors."""

import json
import math
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from cortexgraph import build, load_spec
from cortexgraph.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from cortexgraph.cli import main
from cortexgraph.train import DataError, TrainConfig, TrainingError, result_lines, train
from cortexgraph.train import distributed as dist
from cortexgraph.train.data import make_data, stacked
from cortexgraph.train.loop import _Run
from cortexgraph.train.optim import optimizer_kernels

from .helpers import train_until_the_first_checkpoint

TINY = """
cortexgraph: 1
name: tiny
input: {channels: 3, size: 8}
prenet: [{conv: {out: 4}}]
areas:
  A: {channels: 4, size: 8}
  B: {channels: 8, size: 4}
inputs: {A: once}
steps: 3
transitions:
  A: {A: residual, B: down}
  B: {A: up, B: residual}
readout: {area: B, head: {classes: 3}}
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


def config(spec, out, **changes):
    settings = dict(spec=spec, data="synthetic", out=str(out), epochs=2, batch_size=64, optimizer="adamw",
                    lr=3e-3, progress=False, limit_batches=4)
    return TrainConfig(**{**settings, **changes})


def test_a_run_writes_metrics_the_anytime_curve_and_a_checkpoint(tiny, tmp_path, monkeypatch):
    import matplotlib.figure

    drawn, savefig = [], matplotlib.figure.Figure.savefig

    def seen(fig, *args, **kwargs):
        ax = fig.axes[0]
        drawn.append((ax.get_title(), [t.get_text() for t in ax.get_legend().get_texts()],
                      ax.get_legend().get_texts()[0].get_fontsize()))
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", seen)
    result = train(config(tiny, tmp_path / "run"))
    assert drawn[-1] == ("tiny: accuracy vs readout time", ["tiny", "chance (33.3%)"], 8)
    out = Path(result["out"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert set(metrics["epochs"][0]) >= {"train_loss", "train_acc", "test_loss", "test_acc", "lr",
                                         "images_per_second", "anytime"}
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "test_acc" in header and "acc@1" in header and "acc@3" in header  # B is first reached at step 1
    assert (out / "anytime.png").stat().st_size > 1000
    assert (out / "anytime.csv").read_text().startswith("step,test_accuracy\n1,")
    assert result["anytime"][3] == metrics["epochs"][-1]["test_acc"]


def test_training_on_the_cpu_warns_of_nothing(tiny, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pinned memory asked for without a GPU, a deprecated call: each an error
        train(config(tiny, tmp_path / "run", epochs=1, limit_batches=2))


def test_a_finished_run_says_its_accuracy_and_where_it_wrote(tiny, tmp_path, capsys):
    result = train(config(tiny, tmp_path / "run", epochs=1, progress=True))
    out = Path(result["out"])
    assert result["plot"] == str(out / "anytime.png")
    steps = ", ".join(f"t={t} {100 * a:.1f}%" for t, a in sorted(result["anytime"].items()))
    lines = [f"test accuracy by readout step: {steps}",
             f"wrote {out}/metrics.csv, metrics.json, checkpoint.pt and the plot {out / 'anytime.png'}"]
    assert result_lines(result) == lines and capsys.readouterr().out.endswith("\n".join(lines) + "\n")
    result = train(config(tiny, tmp_path / "plain", epochs=1, anytime=False))
    assert "plot" not in result and result_lines(result) == [
        f"test accuracy {100 * result['test_acc']:.1f}%; wrote {result['out']}/metrics.csv, metrics.json and "
        "checkpoint.pt"]
    assert result_lines({"epochs": [], "out": "x"}) == []
    assert result_lines({"epochs": [{}], "out": "o", "plot": "o/a.png", "anytime": {2: 0.25, 1: 0.5}})[0] == (
        "test accuracy by readout step: t=1 50.0%, t=2 25.0%")


def test_adamw_runs_at_the_rate_and_decay_asked(tiny, tmp_path):
    result = train(config(tiny, tmp_path / "run", epochs=1, schedule="constant", lr=3e-3, weight_decay=0.01))
    group = read_checkpoint(result["checkpoint"])["optimizer"]["param_groups"][0]
    assert (result["epochs"][0]["lr"], group["lr"], group["weight_decay"]) == (3e-3, 3e-3, 0.01)


def test_build_restores_the_trained_model_from_the_checkpoint_alone(tiny, tmp_path):
    result = train(config(tiny, tmp_path / "run"))
    payload = read_checkpoint(result["checkpoint"])
    assert payload["settings"]["optimizer"] == "adamw" and payload["epoch"] == 2
    model = build(result["checkpoint"]).eval()
    fresh = build(tiny).eval()
    fresh.load_state_dict(payload["model"])
    x = torch.randn(5, 3, 8, 8)
    torch.testing.assert_close(model(x), fresh(x), rtol=0, atol=0)


def test_resuming_gives_the_same_weights_as_an_uninterrupted_run(tiny, tmp_path, monkeypatch):
    train(config(tiny, tmp_path / "whole", epochs=3))
    train_until_the_first_checkpoint(config(tiny, tmp_path / "parts", epochs=3), monkeypatch)
    assert read_checkpoint(tmp_path / "parts" / "checkpoint.pt")["epoch"] == 1
    train(config(tiny, tmp_path / "parts", epochs=3, resume=True))
    whole = read_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    parts = read_checkpoint(tmp_path / "parts" / "checkpoint.pt")
    assert parts["epoch"] == 3
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, parts["model"][name]), name
    assert [e["test_loss"] for e in whole["metrics"]] == [e["test_loss"] for e in parts["metrics"]]


def test_digits_are_real_and_reach_high_accuracy(tmp_path):
    result = train(TrainConfig(spec="demo/frnn3-digits", data="digits", out=str(tmp_path / "digits"), epochs=3,
                               batch_size=64, optimizer="adamw", lr=3e-3, progress=False))
    assert result["test_acc"] > 0.85


def test_classes_that_do_not_match_the_data_are_one_clear_error(tiny, tmp_path):
    with pytest.raises(DataError, match="tiny reads out 3 classes but digits has 10; pass --classes 10"):
        train(config(tiny, tmp_path / "run", data="digits"))


def test_missing_image_folder(tiny, tmp_path):
    with pytest.raises(DataError, match="imagefolder:DIR wants DIR/train/<class>/<image>"):
        train(config(tiny, tmp_path / "run", data=f"imagefolder:{tmp_path / 'nowhere'}"))


def test_the_offline_data_sets_are_split_and_drawn_as_documented():
    spec = load_spec("demo/frnn3-digits")
    digits = make_data("digits", spec)
    assert (len(digits.train), len(digits.test)) == (1437, 360)  # 1,797 images, a fifth held out, stratified
    first, again, other = (make_data("synthetic", spec, seed=s) for s in (0, 0, 1))
    (x1, y1), (x2, y2), (x3, y3) = (stacked(d.train) for d in (first, again, other))
    assert torch.equal(y1, y2) and torch.equal(x1, x2)  # the seed fixes labels and images
    assert not torch.equal(y1, y3)


def test_image_folders_without_class_folders_are_one_line(tmp_path):
    for part in ("train", "val"):
        (tmp_path / part).mkdir()
    with pytest.raises(DataError) as caught:
        make_data(f"imagefolder:{tmp_path}", load_spec("torchvision/resnet18"))
    assert str(caught.value).startswith(f"cannot read images under {tmp_path}: Couldn't find any class folder in "
                                        f"{tmp_path / 'train'}")


def test_missing_image_folder_says_the_layout(tmp_path):
    with pytest.raises(DataError) as caught:
        make_data(f"imagefolder:{tmp_path}", load_spec("torchvision/resnet18"))
    assert str(caught.value) == (f"{tmp_path / 'train'} is not a folder; imagefolder:DIR wants "
                                 "DIR/train/<class>/<image> and DIR/val/<class>/<image> (ImageNet's layout)")


def test_image_folder_trains(tmp_path):
    from PIL import Image

    for part in ("train", "val"):
        for label, colour in (("cat", (250, 20, 20)), ("dog", (20, 20, 250))):
            folder = tmp_path / "images" / part / label
            folder.mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (20, 20), tuple(max(0, c - 10 * i) for c in colour)).save(folder / f"{i}.png")
    spec = tmp_path / "folder.yaml"
    spec.write_text(TINY.replace("classes: 3", "classes: 2"))
    result = train(config(str(spec), tmp_path / "run", data=f"imagefolder:{tmp_path / 'images'}", batch_size=4))
    assert len(result["epochs"]) == 2
    data = make_data(f"imagefolder:{tmp_path / 'images'}", load_spec(str(spec)))
    assert (data.name, data.classes, len(data.train), len(data.test)) == (f"imagefolder:{tmp_path / 'images'}", 2,
                                                                          12, 12)


@pytest.mark.parametrize("failure, reason", [
    (urllib.error.URLError("no network"), "URLError: <urlopen error no network>"),
    (RuntimeError(), "RuntimeError: no reason given")])
def test_cifar10_offline_says_where_to_put_the_files(tmp_path, monkeypatch, failure, reason):
    import torchvision.datasets.cifar as cifar

    def offline(*args, **kwargs):
        raise failure

    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    spec = tmp_path / "c.yaml"
    spec.write_text(TINY.replace("size: 8}\nprenet", "size: 32}\nprenet").replace("A: {channels: 4, size: 8}",
                    "A: {channels: 4, size: 32}").replace("B: {channels: 8, size: 4}", "B: {channels: 8, size: 16}")
                    .replace("classes: 3", "classes: 10"))
    with pytest.raises(DataError) as caught:
        train(config(str(spec), tmp_path / "run", data="cifar10", data_dir=str(tmp_path / "data"), download=True))
    data = tmp_path / "data"
    assert str(caught.value) == (f"cifar10 is not in {data} and could not be downloaded ({reason}); put "
                                 f"cifar-10-batches-py/ (cifar-10-python.tar.gz extracted) in {data}, or pass "
                                 "--data-dir")
    with pytest.raises(DataError) as caught:  # nothing is downloaded unless asked
        train(config(str(spec), tmp_path / "run", data="cifar10", data_dir=str(tmp_path / "data")))
    assert str(caught.value) == (f"cifar10 is not in {data} (torchvision's layout: {data}/cifar-10-batches-py/ "
                                 "(cifar-10-python.tar.gz extracted)); pass --download to fetch it there, or "
                                 "--data-dir to name where it is")


def test_cifar10_reads_the_real_format(tmp_path, monkeypatch):
    """The real loader on a small CIFAR-10-format folder (torchvision's checksums patched for it)."""
    import pickle

    import numpy as np
    import torchvision.datasets.cifar as cifar

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name, n in [(f"data_batch_{i}", 20) for i in range(1, 6)] + [("test_batch", 30)]:
        batches[name] = {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), "labels": list(range(10)) * (n // 10)}
        (folder / name).write_bytes(pickle.dumps(batches[name]))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args: True)
    data = make_data("cifar10", load_spec("liao2016/frnn2-cifar"), root=tmp_path / "data")
    assert (len(data.train), len(data.test), data.classes) == (100, 30, 10)  # five training batches, one test
    assert data.augment == "crop" and data.normalize.startswith("computed (mean ")  # CIFAR's recipe, by default
    # Normalised by each channel's mean and deviation over the training images (CIFAR's usual constants are
    # these, over the real set).
    train_pixels = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)]).reshape(-1, 3, 1024)
    mean = torch.tensor(train_pixels.transpose(1, 0, 2).reshape(3, -1).mean(1) / 255)
    std = torch.tensor(train_pixels.transpose(1, 0, 2).reshape(3, -1).std(1, ddof=1) / 255)
    assert torch.allclose(torch.tensor(data.train.prepare.mean, dtype=torch.float64), mean)
    assert torch.allclose(torch.tensor(data.train.prepare.std, dtype=torch.float64), std)

    def plain(row):
        image = torch.tensor(row, dtype=torch.float32).reshape(3, 32, 32) / 255
        return (image - mean.float()[:, None, None]) / std.float()[:, None, None]

    # Training images are augmented as the recipe does (random 32-pixel crops of the image padded by 4 zeros,
    # random flips); test images are not.
    first = plain(batches["data_batch_1"]["data"][0])
    torch.manual_seed(0)
    draws = [data.train[0][0] for _ in range(40)]
    shifted = [d for d in draws if not (torch.allclose(d, first, atol=1e-6) or torch.allclose(d, first.flip(-1),
                                                                                             atol=1e-6))]
    padding = ((0 - mean.float()) / std.float())[:, None].expand(3, 32)
    assert shifted and all(any(torch.allclose(d[:, :, i], padding) or torch.allclose(d[:, i, :], padding)
                               for i in (0, 31)) for d in shifted)  # a shift brings in a row or column of zeros
    assert torch.allclose(data.test[0][0], plain(batches["test_batch"]["data"][0]), atol=1e-6)
    spec = build("liao2016/frnn2-cifar").spec.to_dict()
    spec["steps"] = 3
    for area in spec["areas"].values():
        area["channels"] = 4
    spec["prenet"] = [{"conv": {"out": 4}}]
    path = tmp_path / "small-cifar.json"
    path.write_text(json.dumps(spec))
    result = train(config(str(path), tmp_path / "run", data="cifar10", data_dir=str(tmp_path / "data"),
                          batch_size=25, limit_batches=None, epochs=1))
    assert result["epochs"][0]["seconds"] > 0


def test_unwritable_output_fails_before_training(tiny, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(TrainingError, match=f"cannot write to {blocked}/run"):
        train(config(tiny, blocked / "run"))


def test_corrupt_checkpoint_is_one_line_and_keeps_the_file(tiny, tmp_path, capsys):
    result = train(config(tiny, tmp_path / "run", epochs=1))
    path = Path(result["checkpoint"])
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint"):
        build(str(path))
    code = main(["train", tiny, "--data", "synthetic", "--out", str(tmp_path / "run"), "--resume", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "cannot be read as a checkpoint" in err
    assert path.stat().st_size == 1000


def test_resume_with_another_spec_is_refused(tiny, tmp_path):
    train(config(tiny, tmp_path / "run", epochs=1))
    Path(tiny).write_text(TINY.replace("steps: 3", "steps: 4"))  # the file changed since
    with pytest.raises(CheckpointError, match="trained from another spec"):
        train(config(tiny, tmp_path / "run", epochs=1, resume=True))


def test_cli_train_reports_and_exits_0(tiny, tmp_path, capsys):
    code = main(["train", tiny, "--epochs", "1", "--limit-batches", "2", "--out", str(tmp_path / "run"),
                 "--optimizer", "adamw"])
    out = capsys.readouterr().out
    assert code == 0 and "epoch 1/1: train loss" in out and "test accuracy by readout step: t=1" in out


DDP_DRIVER = """
import os, sys, torch
import cortexgraph.train.loop as training
from cortexgraph.cli import main

finish = training._Run._finish

def finish_and_keep(self):  # each process keeps its own final state, for the test to compare
    torch.save(self.model.state_dict(), self.out / f"rank{os.environ['RANK']}.pt")
    return finish(self)

training._Run._finish = finish_and_keep
sys.exit(main(sys.argv[1:]))
"""


def test_two_processes_on_cpu_stay_in_sync(tiny, tmp_path):
    """torchrun with the gloo backend: both processes end with the same weights and statistics, compared
    here from each process's own state dict (not from the run's own checksum), and equal to the checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    import socket

    with socket.socket() as s:  # a free port for the processes to meet on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = tmp_path / "driver.py"
    driver.write_text(DDP_DRIVER)
    torchrun = Path(sys.executable).parent / "torchrun"
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), str(driver),
                           "train", tiny, "--epochs", "2", "--batch-size", "32", "--limit-batches", "4",
                           "--optimizer", "adamw", "--lr", "0.003", "--out", str(tmp_path / "ddp"), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    epochs = json.loads((tmp_path / "ddp" / "metrics.json").read_text())["epochs"]
    assert [e["settings"]["processes"] for e in epochs] == [2, 2]
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    saved = read_checkpoint(tmp_path / "ddp" / "checkpoint.pt")["model"]
    fresh = build(tiny).state_dict()
    for name, value in ranks[0].items():
        assert torch.equal(value, ranks[1][name]) and torch.equal(value, saved[name]), name
    assert any(not torch.equal(v, fresh[k]) for k, v in ranks[0].items() if k.endswith("weight"))  # it trained


@pytest.mark.parametrize("schedule, factors", [("cosine", [1.0, 0.75, 0.25]), ("step", [1.0, 1.0, 0.5]),
                                               ("constant", [1.0, 1.0, 1.0])])
def test_sgd_under_each_schedule_has_its_rates_and_resumes_bit_exactly(tiny, tmp_path, monkeypatch, schedule, factors):
    settings = dict(epochs=3, optimizer="sgd", lr=0.05, schedule=schedule, step_size=2, gamma=0.5)
    whole = train(config(tiny, tmp_path / "whole", **settings))
    assert [e["lr"] for e in whole["epochs"]] == pytest.approx([0.05 * f for f in factors], rel=1e-12)
    train_until_the_first_checkpoint(config(tiny, tmp_path / "parts", **settings), monkeypatch)
    parts = train(config(tiny, tmp_path / "parts", resume=True, **settings))
    assert [e["train_loss"] for e in parts["epochs"]] == [e["train_loss"] for e in whole["epochs"]]
    ours, theirs = (read_checkpoint(r["checkpoint"]) for r in (parts, whole))
    assert all(torch.equal(ours["model"][k], v) for k, v in theirs["model"].items())
    assert all(torch.equal(ours["optimizer"]["state"][i]["momentum_buffer"], s["momentum_buffer"])
               for i, s in theirs["optimizer"]["state"].items())


# --- collectives, with the other process of a two-process run faked --------------------------------------


@pytest.fixture
def two_processes(monkeypatch):
    """This process as rank 0 of two; `other` holds what rank 1 contributes to each collective."""
    from cortexgraph.train import distributed as dist

    other = {}

    def all_gather_object(out, obj):
        out[0], out[1] = obj, other["object"]

    def all_gather(out, tensor):
        out[0].copy_(tensor)
        out[1].copy_(torch.tensor([other["checksum"]], dtype=tensor.dtype))

    monkeypatch.setattr(dist.dist, "all_gather_object", all_gather_object)
    monkeypatch.setattr(dist.dist, "all_gather", all_gather)
    return dist.World(rank=0, size=2), other


def test_lists_are_gathered_in_rank_order(two_processes):
    from cortexgraph.train.distributed import gather_lists

    world, other = two_processes
    other["object"] = ["b.png", "c.png"]
    assert gather_lists(["a.png"], world) == ["a.png", "b.png", "c.png"]


def test_ranks_whose_weights_differ_below_float32_resolution_disagree(two_processes):
    from cortexgraph.train.distributed import checksums_agree

    world, other = two_processes
    model = torch.nn.Linear(4, 4)
    _, total = checksums_agree(model, type(world)(), torch.device("cpu"))  # this process's own checksum
    other["checksum"] = total
    assert checksums_agree(model, world, torch.device("cpu"))[0]
    other["checksum"] = total * (1 + 1e-8)  # the same in float32; a weight that drifted, in float64
    assert not checksums_agree(model, world, torch.device("cpu"))[0]


@pytest.mark.dynamo
def test_compiled_training_runs_full_batches_compiled_and_a_smaller_last_batch_eagerly(tiny, tmp_path,
                                                                                        monkeypatch):
    """--compile MODE hands the mode to torch.compile (here with Dynamo's AOT eager backend: Inductor takes
    minutes on the CPU) once, for the whole training step; the result is the eager run's."""
    compiled_calls, modes, marks = [], [], []
    real_compile = torch.compile

    class Counted(torch.nn.Module):
        def __init__(self, compiled):
            super().__init__()
            self.compiled = compiled

        def forward(self, x, **kwargs):
            compiled_calls.append(len(x))
            return self.compiled(x, **kwargs)

    def compile_(net, mode=None, fullgraph=False):
        modes.append((mode, fullgraph))
        return Counted(real_compile(net, backend="aot_eager", fullgraph=fullgraph))

    monkeypatch.setattr(torch, "compile", compile_)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    runs = {}
    for mode in (None, "reduce-overhead"):  # 1,024 images in batches of 300: 3 full ones and one of 124
        runs[mode] = train(config(tiny, tmp_path / str(mode), epochs=1, batch_size=300, limit_batches=None,
                                  compile=mode))
    assert modes == [("reduce-overhead", True)] and compiled_calls == [300, 300, 300] and len(marks) == 3
    eager, compiled = (read_checkpoint(runs[m]["checkpoint"]) for m in (None, "reduce-overhead"))
    torch.testing.assert_close(compiled["model"], eager["model"], rtol=1e-5, atol=1e-6)
    assert compiled["metrics"][0]["settings"]["compile"] == "reduce-overhead"


def test_the_optimizer_runs_fused_on_cuda_and_as_torch_chooses_elsewhere(tiny, tmp_path):
    assert optimizer_kernels(torch.device("cuda", 0)) == {"fused": True}
    assert optimizer_kernels(torch.device("cpu")) == {}
    # A run resumed elsewhere takes this device's kernels, not those its checkpoint's optimizer ran with.
    first = train(config(tiny, tmp_path / "run", epochs=2, limit_batches=1))
    payload = {k: v for k, v in read_checkpoint(first["checkpoint"]).items() if k not in ("format", "version")}
    payload["optimizer"]["param_groups"][0]["fused"] = True  # as a GPU run saves it
    save_checkpoint(first["checkpoint"], **payload)  # (a new file: the one read is mapped)

    run = _Run(config(tiny, tmp_path / "run", epochs=2, limit_batches=1, resume=True), dist.world_from_env(),
               torch.device("cpu"))
    try:
        run.prepare()
        assert all(g["fused"] is None and g["foreach"] is None for g in run.optimizer.param_groups)
    finally:
        run.folder.release()


def test_a_run_resumed_onto_fused_kernels_loads_its_optimizer_for_them(tiny, tmp_path, monkeypatch):
    """A CPU run's checkpoint resumed on CUDA: the optimizer is made fused there, and its saved step
    counters must be placed as a fused optimizer needs them (on the parameters' device, float32), which
    torch does only when the loaded groups already say fused. The CPU runs fused AdamW too, so CUDA's
    kernels are patched in here; a float64 counter stands in for one left where the checkpoint's run
    kept it."""
    settings = dict(epochs=3, limit_batches=1)
    train_until_the_first_checkpoint(config(tiny, tmp_path / "run", **settings), monkeypatch)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    payload = {k: v for k, v in read_checkpoint(checkpoint).items() if k not in ("format", "version")}
    for state in payload["optimizer"]["state"].values():
        state["step"] = state["step"].double()
    save_checkpoint(checkpoint, **payload)  # (a new file: the one read is mapped)

    import cortexgraph.train.optim as optim

    monkeypatch.setattr(optim, "optimizer_kernels", lambda device: {"fused": True})
    run = _Run(config(tiny, tmp_path / "run", resume=True, **settings), dist.world_from_env(), torch.device("cpu"))
    try:
        run.prepare()
        assert all(g["fused"] is True and g["foreach"] is None for g in run.optimizer.param_groups)
        assert {s["step"].dtype for s in run.optimizer.state.values()} == {torch.float32}
    finally:
        run.folder.release()
    resumed = train(config(tiny, tmp_path / "run", resume=True, **settings))
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]


@pytest.mark.parametrize("spec", ["convrnn/lstm-stream", "blt/blt"])
def test_specs_with_cells_train_and_come_back_from_their_checkpoint(spec, tmp_path):
    """Cells (an LSTM's memory; BLT's layer norms, same-step sweep and readout at every step) through the whole
    loop: finite losses, no warnings, and the checkpoint alone rebuilds the trained weights."""
    result = train(config(spec, tmp_path / "run", epochs=1, size=16,
                          limit_batches=2, batch_size=16, classes=3))
    epoch = result["epochs"][0]
    assert math.isfinite(epoch["train_loss"]) and math.isfinite(epoch["test_loss"]) and not epoch["warnings"]
    trained = build(result["checkpoint"]).eval()
    state = read_checkpoint(result["checkpoint"])["model"]
    assert all(torch.equal(trained.state_dict()[k], v) for k, v in state.items())


def test_the_test_loss_is_the_mean_over_test_images_not_over_batches(tiny, tmp_path):
    # 48 does not divide the synthetic test split, so a mean of batch means would differ from the mean over
    # images; the expectation is computed here, from the saved model and the test split alone
    result = train(config(tiny, tmp_path / "run", epochs=1, batch_size=48))
    out = Path(result["out"])
    model = build(str(out / "checkpoint.pt")).eval()
    x, y = stacked(make_data("synthetic", load_spec(TINY), seed=0).test)  # the default seed
    assert len(y) % 48
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(model(x), y))
    assert json.loads((out / "metrics.json").read_text())["epochs"][0]["test_loss"] == pytest.approx(expected,
                                                                                                   rel=1e-5)


@pytest.mark.parametrize("limit", [1, 3])
def test_limit_batches_trains_on_exactly_that_many_batches_an_epoch(tiny, tmp_path, limit):
    result = train(config(tiny, tmp_path / "run", epochs=2, batch_size=16, limit_batches=limit))
    state = read_checkpoint(Path(result["out"]) / "checkpoint.pt")["optimizer"]["state"]
    assert {int(s["step"]) for s in state.values()} == {2 * limit}  # one optimizer step a batch, two epochs


@pytest.mark.parametrize("given, on_the_cpu", [(None, False), (True, True), (False, False)])
def test_amp_and_channels_last_default_to_the_device_s_and_follow_the_flag(tiny, tmp_path, given, on_the_cpu):
    """Unset, each is on for CUDA and off elsewhere; set, it is what the user said, on any device."""
    run = _Run(config(tiny, tmp_path / "run", amp=given, channels_last=given), dist.world_from_env(),
               torch.device("cpu"))
    assert (run.amp, run.channels_last) == (on_the_cpu, on_the_cpu)
    cuda = _Run(config(tiny, tmp_path / "run", amp=given, channels_last=given), dist.world_from_env(),
                torch.device("cuda", 0))
    assert (cuda.amp, cuda.channels_last) == ((True, True) if given is None else (given, given))
