"""`--resume` remembers (issue 30): a resumed run takes its settings from its checkpoint, so `--resume` alone
continues it; a flag given changes only what may change, and a fixed setting given with another value is
refused by name. A flag given counts as given whatever its value (its default's too)."""

import json

import pytest
import torch

from cortexgraph.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from cortexgraph.cli import build_parser, main
from cortexgraph.flags import made_from
from cortexgraph.train import TrainConfig, TrainingError, train
from cortexgraph.train.resume import given_settings

from .helpers import stopped_after_the_first_checkpoint, train_until_the_first_checkpoint
from .test_train import TINY

# The run of the issue, small: a flag for each kind of setting, none of them its default.
FLAGS = ["--data", "digits", "--classes", "10", "--optimizer", "adamw", "--lr", "0.01", "--epochs", "3",
         "--batch-size", "32", "--limit-batches", "2", "--schedule", "step", "--step-size", "1", "--gamma", "0.5",
         "--seed", "3", "--weight-decay", "0.02"]
REFUSED = "cannot resume {out} with other settings than its run's: {named}; give the run's values, or start a " \
          "new run (--overwrite, or another --out)"


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


def _stopped_after_the_first_checkpoint(argv, monkeypatch):
    """`cortexgraph train ...` killed right after its first checkpoint."""
    stopped_after_the_first_checkpoint(lambda: main(argv), monkeypatch)


def _same_run(ours, theirs):
    ours, theirs = read_checkpoint(ours / "checkpoint.pt"), read_checkpoint(theirs / "checkpoint.pt")
    assert ours["epoch"] == theirs["epoch"]
    for name, tensor in theirs["model"].items():
        assert torch.equal(tensor, ours["model"][name]), name
    assert [e["train_loss"] for e in ours["metrics"]] == [e["train_loss"] for e in theirs["metrics"]]
    assert [e["test_loss"] for e in ours["metrics"]] == [e["test_loss"] for e in theirs["metrics"]]


def test_resume_alone_continues_the_run_bit_for_bit_and_says_whose_settings(tiny, tmp_path, monkeypatch, capsys):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(["train", tiny, "--out", str(whole), "--quiet", *FLAGS]) == 0
    _stopped_after_the_first_checkpoint(["train", tiny, "--out", str(parts), "--quiet", *FLAGS], monkeypatch)
    capsys.readouterr()
    assert main(["train", tiny, "--out", str(parts), "--resume"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    normalize = read_checkpoint(parts / "checkpoint.pt")["settings"]["normalize"]  # the numbers computed
    assert first == (f"resuming {parts} after epoch 1 (its settings: --classes 10 --data digits --augment none "
                     f"--normalize {normalize} --epochs 3 --batch-size 32 --optimizer adamw --lr 0.01 --weight-decay "
                     "0.02 --schedule step --step-size 1 --gamma 0.5 --seed 3 --limit-batches 2)")
    _same_run(parts, whole)
    ours, theirs = (read_checkpoint(out / "checkpoint.pt")["settings"] for out in (parts, whole))
    assert {k: v for k, v in ours.items() if k not in ("out", "resume", "progress")} == {
        k: v for k, v in theirs.items() if k not in ("out", "resume", "progress")}


@pytest.mark.parametrize("flags, named", [
    (["--seed", "0"], "--seed 0 (the run: --seed 3)"),  # the default, given: given
    (["--lr", "0.1"], "--lr 0.1 (the run: --lr 0.01)"),  # what TrainConfig fills in for SGD, given: given
    (["--weight-decay", "0.0005"], "--weight-decay 0.0005 (the run: --weight-decay 0.02)"),
    (["--optimizer", "sgd"], "--optimizer sgd (the run: --optimizer adamw)"),
    (["--data", "synthetic"], "--data synthetic (the run: --data digits)"),
    (["--batch-size", "128"], "--batch-size 128 (the run: --batch-size 32)"),
    (["--epochs", "1"], "--epochs 1 (the run has trained 3 already)"),
    (["--augment", "flip"], "--augment flip (the run: --augment none)"),
])
def test_a_fixed_flag_given_with_another_value_is_refused_by_name_alone(tiny, tmp_path, capsys, flags, named):
    out = tmp_path / "run"
    assert main(["train", tiny, "--out", str(out), "--quiet", *FLAGS]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", tiny, "--out", str(out), "--resume", *flags]) == 2
    assert capsys.readouterr().err == f"cortexgraph: {REFUSED.format(out=out, named=named)}\n"
    assert (out / "checkpoint.pt").read_bytes() == before


def test_a_free_flag_given_is_taken_and_the_others_are_the_runs(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", tiny, "--out", str(out), "--quiet", *FLAGS, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["train", tiny, "--out", str(out), "--resume", "--epochs", "2", "--workers", "1",
                 "--on-nonfinite", "skip", "--quiet"]) == 0
    assert "resuming" not in capsys.readouterr().out  # --quiet given: taken
    assert main(["train", tiny, "--out", str(out), "--resume", "--epochs", "3"]) == 0
    assert "epoch 3/3: train loss" in capsys.readouterr().out  # what is printed is each invocation's own
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert [e["settings"]["workers"] for e in epochs] == [0, 1, 1]  # given, then the run's
    assert [e["settings"]["on_nonfinite"] for e in epochs] == ["stop", "skip", "skip"]
    settings = read_checkpoint(out / "checkpoint.pt")["settings"]
    assert (settings["optimizer"], settings["lr"], settings["seed"], settings["epochs"]) == ("adamw", 0.01, 3, 3)


def test_a_flag_given_counts_as_given_whatever_its_value_and_only_then():
    parse = build_parser().parse_args
    config = made_from(parse(["train", "s.yaml", "--seed", "0", "--optimizer", "sgd", "--lr", "0.1",
                              "--no-anytime", "--activation-checkpointing", "--compile"]), TrainConfig)
    assert config.model_fields_set == {"spec", "seed", "optimizer", "lr", "anytime", "checkpoint", "compile"}
    assert config == TrainConfig(spec="s.yaml", anytime=False, checkpoint=True, compile="default")
    alone = made_from(parse(["train", "s.yaml"]), TrainConfig)
    assert alone.model_fields_set == {"spec"}  # not the learning rate and decay TrainConfig fills in
    assert (alone.lr, alone.weight_decay) == (0.1, 5e-4) and alone == TrainConfig(spec="s.yaml")
    assert given_settings(alone) == {"spec"} and "lr" in given_settings(config)
    # In Python, the fields set, less a filled-in rate or decay (one given equal to it looks the same).
    assert given_settings(TrainConfig(spec="s", seed=0, workers=0)) == {"spec", "seed", "workers"}
    assert given_settings(TrainConfig(spec="s", optimizer="adamw", lr=0.01)) == {"spec", "optimizer", "lr"}


def _python_run(tiny, out, **more):
    settings = dict(data="digits", classes=10, optimizer="adamw", lr=0.01, epochs=3, batch_size=32, limit_batches=2,
                    schedule="constant", seed=3, progress=False)
    return TrainConfig(spec=tiny, out=str(out), **{**settings, **more})


def test_the_python_api_resumes_with_the_checkpoints_settings(tiny, tmp_path, monkeypatch):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(_python_run(tiny, whole))
    train_until_the_first_checkpoint(_python_run(tiny, parts), monkeypatch)
    resumed = train(TrainConfig(spec=tiny, out=str(parts), resume=True, progress=False))
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    _same_run(parts, whole)
    with pytest.raises(TrainingError) as caught:
        train(TrainConfig(spec=tiny, out=str(parts), resume=True, seed=0, progress=False))
    assert str(caught.value) == REFUSED.format(out=parts, named="--seed 0 (the run: --seed 3)")
    with pytest.raises(TrainingError) as caught:  # a learning rate given is given, even the one filled in
        train(TrainConfig(spec=tiny, out=str(parts), resume=True, lr=1e-3, progress=False))
    assert str(caught.value) == REFUSED.format(out=parts, named="--lr 0.001 (the run: --lr 0.01)")
    assert TrainConfig(spec=tiny, optimizer="adamw").model_fields_set == {"spec", "optimizer"}


def test_settings_a_checkpoint_lacks_are_this_invocations(tiny, tmp_path):
    """An older checkpoint, without the settings added since: the ones this invocation has (default or
    given) stand in for them."""
    out = tmp_path / "run"
    train(_python_run(tiny, out, epochs=1))
    payload = {k: v for k, v in read_checkpoint(out / "checkpoint.pt").items() if k not in ("format", "version")}
    for name in ("augment", "normalize", "workers"):
        del payload["settings"][name]
    save_checkpoint(out / "checkpoint.pt", **payload)
    resumed = train(TrainConfig(spec=tiny, out=str(out), resume=True, epochs=2, progress=False))
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2]
    settings = read_checkpoint(out / "checkpoint.pt")["settings"]
    assert (settings["augment"], settings["workers"]) == ("none", 0)
    assert len(settings["normalize"].split(",")) == 2  # the numbers the computed normalisation found


def test_a_runs_data_dir_is_read_never_downloaded_into_unless_given_again(tiny, tmp_path, capsys):
    out, theirs = tmp_path / "run", tmp_path / "their-data"
    assert main(["train", tiny, "--out", str(out), "--quiet", "--data-dir", str(theirs), *FLAGS]) == 0
    capsys.readouterr()
    assert main(["train", tiny, "--out", str(out), "--resume", "--download"]) == 2
    assert capsys.readouterr().err == (f"cortexgraph: --download writes only where --data-dir names (the run's "
                                       f"data_dir, {theirs}, is read, never written to); pass --data-dir {theirs} "
                                       "to download there\n")
    assert main(["train", tiny, "--out", str(out), "--resume", "--download", "--data-dir", str(theirs)]) == 0


def test_a_checkpoints_settings_are_validated_as_flags_are(tiny, tmp_path):
    out = tmp_path / "run"
    train(_python_run(tiny, out, epochs=1))
    payload = {k: v for k, v in read_checkpoint(out / "checkpoint.pt").items() if k not in ("format", "version")}
    payload["settings"]["lr"] = -1.0
    save_checkpoint(out / "checkpoint.pt", **payload)
    with pytest.raises(CheckpointError, match=r"cannot resume from .*checkpoint.pt: its settings cannot be used "
                                              r"\(learning rate must be positive\)$"):
        train(TrainConfig(spec=tiny, out=str(out), resume=True, epochs=2))
