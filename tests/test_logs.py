"""--log tensorboard and --log wandb (issue 32): the event files read back with TensorBoard's own reader, and
the W&B offline run written with the numbers metrics.json holds; a missing package or a bad name refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cortexgraph.cli import main
from cortexgraph.train import TrainConfig

SPEC = {"cortexgraph": 1, "name": "logged", "input": {"channels": 1, "size": 8},
        "areas": {"A": {"channels": 4, "size": 8}, "B": {"channels": 4, "size": 4}},
        "inputs": {"A": {"at": "every", "op": "conv"}}, "steps": 3,
        "transitions": {"A": {"A": "residual", "B": "down"}, "B": {"A": "up", "B": "residual"}},
        "readout": {"area": "B", "head": {"classes": 10}, "activity": {"weight": 0.01}}}


@pytest.fixture
def run(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline, as by default
    (tmp_path / "logged.json").write_text(json.dumps(SPEC))
    assert main(["train", "logged.json", "--data", "digits", "--epochs", "2", "--limit-batches", "2",
                 "--batch-size", "32", "--schedule", "constant", "--out", "run", "--log", "tensorboard,wandb",
                 "--quiet"]) == 0
    return tmp_path / "run"


def test_tensorboard_holds_each_epoch_s_numbers_histograms_and_pictures(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"histograms": 0, "images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    for name in ("train_loss", "test_acc", "lr", "grad_norm", "activity_cost", "activity/A", "accuracy_at_step/3"):
        logged = events.Scalars(name)
        assert [e.step for e in logged] == [1, 2], name
    assert [e.value for e in events.Scalars("train_loss")] == pytest.approx([e["train_loss"] for e in epochs])
    assert [e.value for e in events.Scalars("accuracy_at_step/3")] == pytest.approx(
        [e["anytime"]["3"] if "3" in e["anytime"] else e["anytime"][3] for e in epochs])
    assert {"A/t0", "A/t3", "B/t1", "B/t3"} <= set(tags["histograms"])
    assert sorted(tags["images"]) == ["accuracy_by_readout_step", "network"]


def test_wandb_writes_an_offline_run_in_the_run_folder(run):
    runs = list((run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    log = next(runs[0].glob("run-*.wandb")).read_bytes()  # the run's records, as `wandb sync` uploads them
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    for epoch in epochs:  # each epoch's numbers as metrics.json holds them
        assert json.dumps(epoch["train_loss"]).encode() in log and json.dumps(epoch["test_acc"]).encode() in log
    for key in (b"accuracy_at_step/3", b"activity/B", b"A/t2", b"network", b"accuracy_by_readout_step"):
        assert key in log, key


def test_a_resumed_run_logs_its_new_epochs_and_an_overwritten_run_loses_the_old_logs(run):
    assert main(["train", "logged.json", "--data", "digits", "--epochs", "3", "--out", "run", "--resume",
                 "--log", "tensorboard", "--quiet", "--limit-batches", "2", "--batch-size", "32"]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2, 3]
    assert main(["train", "logged.json", "--data", "digits", "--epochs", "1", "--out", "run", "--overwrite",
                 "--quiet", "--limit-batches", "2", "--batch-size", "32"]) == 0
    assert not (run / "tensorboard").exists() and not (run / "wandb").exists()


def test_a_log_that_cannot_be_written_is_refused_before_anything_is(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logged.json").write_text(json.dumps(SPEC))
    with pytest.raises(ValueError, match="--log tensorboard,mlflow: 'mlflow' is not a log; give tensorboard, "):
        TrainConfig(spec="logged.json", log="tensorboard,mlflow")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["train", "logged.json", "--data", "digits", "--out", "run", "--log", "wandb"]) == 2
    assert capsys.readouterr().err.strip() == ("cortexgraph: --log wandb needs the wandb package: pip install wandb "
                                               "(or cortexgraph[logs])")
    assert not Path("run").exists()


def test_a_sweep_logs_each_trial_the_same_way(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logged.json").write_text(json.dumps(SPEC))
    (tmp_path / "logged.yaml").write_text("cortexgraph-sweep: 1\nspec: logged.json\nvary: {seed: [0]}\n"
                                          "train: {data: digits, epochs: 1, limit_batches: 1, log: tensorboard}\n")
    assert main(["sweep", "logged.yaml"]) == 0
    assert list((tmp_path / "sweeps" / "logged" / "trials" / "0000" / "run" / "tensorboard").glob("events.*"))
