"""Runs a user can trust: a run folder is never overwritten or escaped, two runs never share one, a skipped
step leaves no trace, bad images are left out and named, and `--resume` continues the run it resumes."""

import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import cortexgraph.checkpoint as checkpoints
import cortexgraph.train.loop as training
from cortexgraph import build
from cortexgraph.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from cortexgraph.cli import main
from cortexgraph.drawing import TooBigToDraw, draw
from cortexgraph.train import DataError, TrainConfig, TrainingError, train
from cortexgraph.train.run_folder import RunFolder

from .helpers import Exploit, poison_one_training_image
from .test_train import TINY, config


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


# --- the run folder ----------------------------------------------------------------------------------


def test_a_new_run_never_overwrites_a_finished_one(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1))
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(TrainingError, match=r"run already holds a run \(1 of 1 epochs trained\); continue it with "
                                            r"--resume, replace it with --overwrite, or choose another --out"):
        train(config(tiny, out, epochs=1, seed=1))
    assert (out / "checkpoint.pt").read_bytes() == before
    assert main(["train", tiny, "--out", str(out), "--epochs", "1", "--quiet"]) == 2  # refused: exit 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before

    train(config(tiny, out, epochs=1, seed=1, overwrite=True, progress=True))
    assert (f"replacing the run in {out} (1 of 1 epochs trained) once this run's first epoch is saved: --overwrite"
            in capsys.readouterr().out)
    assert read_checkpoint(out / "checkpoint.pt")["settings"]["seed"] == 1


def test_overwrite_keeps_the_old_run_until_the_new_one_has_saved_an_epoch(tiny, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1))
    before = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    with pytest.raises(DataError):  # the new run fails before its first epoch
        train(config(tiny, out, epochs=1, overwrite=True, data=f"imagefolder:{tmp_path / 'nowhere'}"))
    monkeypatch.setattr(training._Run, "_evaluate", lambda self, epoch: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["train", tiny, "--out", str(out), "--epochs", "1", "--limit-batches", "1", "--overwrite",
                 "--quiet"]) == 130
    assert capsys.readouterr().err.strip().endswith(f"interrupted before the first epoch was saved; {out} still "
                                                    "holds the run it held")
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")} == before


def test_a_fresh_run_interrupted_before_its_first_epoch_says_nothing_was_written(tiny, tmp_path, capsys,
                                                                                   monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(training._Run, "_evaluate", lambda self, epoch: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["train", tiny, "--out", str(out), "--epochs", "1", "--limit-batches", "1", "--quiet"]) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted before the first epoch was saved; nothing was written")
    assert not RunFolder(out).existing_run()


def test_a_folder_whose_files_say_no_epochs_is_described_by_its_files(tiny, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    model = build(tiny)  # saved by hand: no training settings
    save_checkpoint(out / "checkpoint.pt", spec=model.spec.to_dict(), model=model.state_dict())
    (out / "metrics.json").write_text("{}")
    with pytest.raises(TrainingError, match=r"run already holds a run \(checkpoint\.pt, metrics\.json\); continue"):
        train(config(tiny, out, epochs=1))


def test_resume_and_overwrite_together_are_refused(tiny, tmp_path):
    with pytest.raises(ValueError, match="resume .* or overwrite .*, not both"):
        config(tiny, tmp_path, resume=True, overwrite=True)


def test_the_default_run_folder_is_runs_slash_the_spec_name(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train(TrainConfig(spec=tiny, epochs=1, limit_batches=1, progress=False))
    assert Path(result["out"]) == Path("runs/tiny")


def test_a_folder_held_by_a_live_run_is_refused_and_its_temporaries_kept(tiny, tmp_path):
    """Another process holds the folder (a real OS lock); when it is killed, the kernel frees the lock."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                               "from cortexgraph.train.run_folder import RunFolder\n"
                               f"folder = RunFolder(Path({str(out)!r}))\nfolder.hold()\n"
                               "print('held', flush=True)\ntime.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        writing = out / ".checkpoint.pt.x1y2z3.tmp"  # the live run's checkpoint, half written
        writing.write_bytes(b"half a checkpoint")
        with pytest.raises(TrainingError, match=rf"run is in use by another run \(process {holder.pid} on .*, "
                                                r"since .*\); wait for it to end, or choose another --out"):
            train(config(tiny, out, epochs=1))
        assert writing.read_bytes() == b"half a checkpoint"
    finally:
        holder.kill()
        holder.wait()
    train(config(tiny, out, epochs=1))  # the holder is gone: its lock with it, its temporary is stale
    assert not writing.exists()
    assert not list(out.glob(".*.tmp"))


def test_the_lock_is_released_when_a_run_ends_however_it_ends(tiny, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(training._Run, "_evaluate", lambda self, epoch: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        train(config(tiny, out, epochs=1))
    folder = RunFolder(out)
    folder.hold()  # nobody holds it
    folder.release()


# --- what a run saves ------------------------------------------------------------------------------


def test_a_skipped_step_leaves_no_trace_in_the_running_statistics(tiny, tmp_path, monkeypatch):
    poison_one_training_image(monkeypatch)
    result = train(config(tiny, tmp_path / "run", epochs=1, limit_batches=None, on_nonfinite="skip"))
    (epoch,) = result["epochs"]
    assert epoch["skipped_steps"] == 1
    state = read_checkpoint(result["checkpoint"])["model"]
    assert [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()] == []
    assert epoch["test_acc"] > 0.6  # three classes: chance is a third


def test_a_model_that_is_not_finite_is_never_saved(tiny, tmp_path, monkeypatch):
    real = training._Run._evaluate

    def evaluate(self, epoch):
        next(b for name, b in self.model.named_buffers() if "running_var" in name).fill_(math.nan)
        return real(self, epoch)

    monkeypatch.setattr(training._Run, "_evaluate", evaluate)
    with pytest.raises(TrainingError, match=r"after epoch 1, 1 of the model's tensors are not finite \(such as "
                                            r".*running_var\); it was not saved, and no checkpoint was written"):
        train(config(tiny, tmp_path / "run", epochs=1))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def image_folder(root: Path) -> None:
    from PIL import Image

    for part in ("train", "val"):
        for label, colour in (("a", (250, 20, 20)), ("b", (20, 250, 20)), ("c", (20, 20, 250))):
            folder = root / part / label
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (8, 8), tuple(max(0, c - 10 * i) for c in colour)).save(folder / f"{i}.png")
    good = (root / "train" / "a" / "0.png").read_bytes()
    (root / "train" / "a" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (root / "train" / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "train" / "c" / "notes.jpg").write_text("not an image, named as one")
    Image.new("RGB", (16, 16)).save(root / "train" / "c" / "bomb.png")  # past twice the pixel limit set below
    Image.new("RGB", (12, 12)).save(root / "val" / "a" / "bomb.png")  # past the limit, within twice it


def test_unreadable_images_are_left_out_and_named(tiny, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # so that a 16x16 image is a decompression bomb
    image_folder(tmp_path / "images")
    result = train(config(tiny, tmp_path / "run", epochs=1, batch_size=4, data=f"imagefolder:{tmp_path / 'images'}"))
    (epoch,) = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert epoch["unreadable"]["count"] == 4 and epoch["test_unreadable"]["count"] == 1
    named = " ".join(epoch["unreadable"]["files"])
    for name in ("corrupt.png", "truncated.png", "notes.jpg", "bomb.png"):
        assert name in named
    assert "decompression bomb" in epoch["test_unreadable"]["files"][0]
    assert any("4 training files could not be read" in w for w in epoch["warnings"])
    assert read_checkpoint(result["checkpoint"])["epoch"] == 1
    assert "unreadable.count" in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]


def test_a_split_with_no_readable_image_is_one_line(tiny, tmp_path):
    for part in ("train", "val"):
        for label in ("a", "b", "c"):
            folder = tmp_path / "images" / part / label
            folder.mkdir(parents=True)
            (folder / "0.png").write_bytes(b"not a png")
    settings = dict(epochs=1, batch_size=2, data=f"imagefolder:{tmp_path / 'images'}")
    with pytest.raises(DataError, match=r"normalize computed found no readable training image \(.*0.png: .*, and "
                                        r"others\); give --normalize none or MEAN,STD$"):
        train(config(tiny, tmp_path / "run0", **settings))  # the images' statistics are read before training
    settings["normalize"] = "none"
    with pytest.raises(TrainingError, match=r"epoch 1 trained on no images: all 3 files were unreadable \(.*0.png: "):
        train(config(tiny, tmp_path / "run", **settings))
    from PIL import Image

    for label in ("a", "b", "c"):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / "train" / label / "0.png")
    with pytest.raises(TrainingError, match=r"the test split has no readable images \(3 unreadable\)"):
        train(config(tiny, tmp_path / "run2", **settings))


# --- the resume contract -----------------------------------------------------------------------------


@pytest.mark.parametrize("changes, named", [
    ({"lr": 0.01}, "--lr 0.01 (the run: --lr 0.003)"),
    ({"batch_size": 32}, "--batch-size 32 (the run: --batch-size 64)"),
    ({"seed": 7}, "--seed 7 (the run: --seed 0)"),
    ({"data": "digits", "classes": 10}, "--data digits (the run: --data synthetic)"),
    ({"optimizer": "sgd", "lr": 0.003}, "--optimizer sgd (the run: --optimizer adamw)"),
    ({"epochs": 3}, "--epochs 3 (the run: --epochs 2; its cosine schedule spans them"),
    ({"epochs": 1}, "--epochs 1 (the run has trained 2 already)"),
    ({"clip_grad": 1.0}, "--clip-grad 1.0 (the run: no --clip-grad)"),
])
def test_resume_refuses_other_settings_naming_each(tiny, tmp_path, changes, named):
    out = tmp_path / "run"
    train(config(tiny, out))
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(TrainingError, match=r"cannot resume .* with other settings than its run's: .*"
                                            + named.replace("(", r"\(").replace(")", r"\)")):
        train(config(tiny, out, resume=True, **changes))
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_refuses_a_change_to_every_other_fixed_setting_and_allows_those_the_recipe_ignores(tiny, tmp_path):
    """With the cases above and the processes' test below, each of the 14 fixed settings: an SGD run on the step
    schedule uses all of them. Momentum under AdamW and the step schedule's settings under cosine are not part
    of the recipe, so they may change."""
    out = tmp_path / "run"
    recipe = dict(optimizer="sgd", lr=0.01, schedule="step", step_size=1, gamma=0.5, limit_batches=1)
    train(config(tiny, out, **recipe))
    before = (out / "checkpoint.pt").read_bytes()
    for name, value, named in [
        ("momentum", 0.5, "--momentum 0.5 (the run: --momentum 0.9)"),
        ("weight_decay", 0.01, "--weight-decay 0.01 (the run: --weight-decay 0.0005)"),
        ("schedule", "constant", "--schedule constant (the run: --schedule step)"),
        ("step_size", 2, "--step-size 2 (the run: --step-size 1)"),
        ("gamma", 0.1, "--gamma 0.1 (the run: --gamma 0.5)"),
        ("label_smoothing", 0.1, "--label-smoothing 0.1 (the run: --label-smoothing 0.0)"),
        ("limit_batches", None, "no --limit-batches (the run: --limit-batches 1)"),
    ]:
        with pytest.raises(TrainingError) as caught:
            train(config(tiny, out, resume=True, **{**recipe, name: value}))
        assert str(caught.value) == (f"cannot resume {out} with other settings than its run's: {named}; give the "
                                     "run's values, or start a new run (--overwrite, or another --out)"), name
    assert (out / "checkpoint.pt").read_bytes() == before
    adamw = tmp_path / "adamw"
    train(config(tiny, adamw, epochs=1, limit_batches=1))
    resumed = train(config(tiny, adamw, epochs=1, limit_batches=1, resume=True, momentum=0.1, step_size=5,
                           gamma=0.9))
    assert [e["epoch"] for e in resumed["epochs"]] == [1]


def test_an_sgd_run_resumed_with_adamw_is_refused_before_its_state_is_read(tiny, tmp_path):
    """The case the issue found (once a KeyError: 'step' from AdamW reading SGD's state), in its direction."""
    out = tmp_path / "run"
    train(config(tiny, out, optimizer="sgd", lr=0.01))
    with pytest.raises(TrainingError, match=r"--optimizer adamw \(the run: --optimizer sgd\)"):
        train(config(tiny, out, optimizer="adamw", lr=0.01, resume=True))


def test_every_training_setting_is_either_fixed_or_free_on_resume():
    """A new setting must be classified (resume.py), or --resume would silently ignore its change."""
    from cortexgraph.train.resume import FIXED, FREE

    fields = set(TrainConfig(spec="x").settings()) | {"processes"}
    assert fields == set(FIXED) | set(FREE) | {"epochs"} and not set(FIXED) & set(FREE)


def test_resume_may_change_how_a_run_is_carried_out_and_each_epoch_says_how(tiny, tmp_path):
    out = tmp_path / "run"
    train(config(tiny, out, schedule="constant", optimizer="sgd", lr=0.01))
    with pytest.raises(TrainingError, match="--momentum 0.5 .the run: --momentum 0.9."):
        train(config(tiny, out, schedule="constant", optimizer="sgd", lr=0.01, momentum=0.5, resume=True, epochs=3))
    train(config(tiny, out, schedule="constant", optimizer="sgd", lr=0.01, resume=True, epochs=3,
                 activation_checkpointing=True, on_nonfinite="skip"))
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert [e["settings"]["activation_checkpointing"] for e in epochs] == [None, None, True]
    assert [e["settings"]["on_nonfinite"] for e in epochs] == ["stop", "stop", "skip"]
    assert "settings.on_nonfinite" in (out / "metrics.csv").read_text().splitlines()[0]


def test_a_run_of_several_processes_resumes_only_under_as_many(tiny, tmp_path):
    """The global batch is the batch size times the processes: resumed in one, a run of two would change."""
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1, schedule="constant"))
    payload = read_checkpoint(out / "checkpoint.pt")
    payload["metrics"][0].update(checksum=1234.5, settings={**payload["metrics"][0]["settings"], "processes": 2})
    payload["settings"]["processes"] = 2
    save_checkpoint(out / "checkpoint.pt", **{k: v for k, v in payload.items() if k not in ("format", "version")})
    with pytest.raises(TrainingError, match=r"1 process \(the run: 2; the global batch is the batch size times the "
                                            r"processes: resume under torchrun --nproc_per_node 2\)"):
        train(config(tiny, out, epochs=2, schedule="constant", resume=True))


def test_spec_overrides_that_change_nothing_may_come_and_go_on_resume(tiny, tmp_path):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1, schedule="constant", steps=3))  # the spec's own steps
    train(config(tiny, out, epochs=2, schedule="constant", resume=True))
    with pytest.raises(CheckpointError, match="trained from another spec"):
        train(config(tiny, out, epochs=3, schedule="constant", resume=True, steps=4))


def test_a_resumed_optimizer_holds_its_state_in_memory_not_in_the_file(tiny, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1, schedule="constant", optimizer="sgd", lr=0.01))
    states = []
    real = training._Run._train_epoch
    monkeypatch.setattr(training._Run, "_train_epoch",
                        lambda self, epoch: states.append(self.optimizer.state_dict()["state"]) or real(self, epoch))
    train(config(tiny, out, epochs=2, schedule="constant", optimizer="sgd", lr=0.01, resume=True))
    buffers = [v for state in states[0].values() for v in state.values() if torch.is_tensor(v)]
    assert buffers and not any(b.untyped_storage().filename for b in buffers)  # none mapped from checkpoint.pt


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(model=[1, 2]), "its 'model' is not a mapping of names to tensors"),
    (lambda p: p.update(epoch=-5), "its 'epoch' is -5, not a count of epochs"),
    (lambda p: p.update(optimizer="sgd"), "its 'optimizer' is not an optimizer's state"),
    (lambda p: p.update(metrics={"a": 1}), "its 'metrics' are not a list of epochs"),
    (lambda p: p.update(spec="tiny"), "its 'spec' is str, not a mapping"),
    (lambda p: p.pop("model"), "it has no 'model'"),
    (lambda p: p.update(settings=["sgd"]), "its 'settings' are not a mapping"),
])
def test_hand_made_checkpoints_are_one_line(tiny, tmp_path, change, message):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1))
    payload = {k: v for k, v in read_checkpoint(out / "checkpoint.pt").items() if k not in ("format", "version")}
    change(payload)
    save_checkpoint(out / "checkpoint.pt", **payload)
    with pytest.raises(CheckpointError, match="is damaged or was not written by cortexgraph: " + message):
        build(str(out / "checkpoint.pt"))
    with pytest.raises(CheckpointError, match=message):
        train(config(tiny, out, epochs=1, resume=True))


def test_a_checkpoint_without_its_training_state_builds_but_does_not_resume(tiny, tmp_path):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1))
    payload = read_checkpoint(out / "checkpoint.pt")
    save_checkpoint(out / "checkpoint.pt", spec=payload["spec"], model=payload["model"])
    build(str(out / "checkpoint.pt"))
    with pytest.raises(CheckpointError, match="cannot resume from .*: it has no 'optimizer'"):
        train(config(tiny, out, epochs=1, resume=True))


def _one_parameter(optimizer):  # the state of a model with one parameter
    optimizer["param_groups"][0]["params"] = [0]


def _a_tensor_for_a_state(optimizer):
    optimizer["state"][0] = torch.zeros(3)


def _a_state_of_another_shape(optimizer):
    state = optimizer["state"][0]
    name = next(k for k, v in state.items() if torch.is_tensor(v) and v.dim())
    state[name] = torch.zeros(*state[name].shape, 2)


@pytest.mark.parametrize("change, reason", [
    (_one_parameter, r"\(loaded state dict contains a parameter group that doesn't match"),
    (_a_tensor_for_a_state, r"\(a parameter's state is not a mapping\)"),
    (_a_state_of_another_shape, r"\(\w+ of shape \([\d, ]+\) for a parameter of \([\d, ]+\)\)"),
])
def test_an_optimizer_state_that_does_not_fit_is_one_line(tiny, tmp_path, change, reason):
    """Refused on loading, not at the first step or with a traceback."""
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1, schedule="constant"))
    payload = {k: v for k, v in read_checkpoint(out / "checkpoint.pt").items() if k not in ("format", "version")}
    change(payload["optimizer"])
    save_checkpoint(out / "checkpoint.pt", **payload)
    with pytest.raises(CheckpointError, match=r"checkpoint.pt: its optimizer's state does not fit this model "
                       + reason):
        train(config(tiny, out, epochs=2, schedule="constant", resume=True))


def test_an_inflating_checkpoint_is_refused_before_it_is_read(tiny, tmp_path, monkeypatch):
    """A zip bomb: 16 MB of zeros deflated to kilobytes; torch.save never compresses."""
    plain, bomb = tmp_path / "plain.pt", tmp_path / "bomb.pt"
    from cortexgraph import load_spec

    save_checkpoint(plain, spec=load_spec(tiny).to_dict(), model={"x": torch.zeros(4_000_000)})
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry))
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(checkpoints.torch, "load", lambda *a, **k: pytest.fail("the bomb was read"))
    with pytest.raises(CheckpointError, match=r"bomb.pt is not a checkpoint torch.save wrote: \d+ of its entries "
                                              r"are compressed .*declaring 16,00\d,\d+ bytes in"):
        build(str(bomb))


def test_tensors_that_do_not_fit_the_spec_are_refused_before_they_are_copied(tiny, tmp_path):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1))
    payload = read_checkpoint(out / "checkpoint.pt")
    name = next(iter(payload["model"]))
    payload["model"][name] = torch.zeros(10_000_000)
    save_checkpoint(out / "checkpoint.pt", spec=payload["spec"], model=payload["model"])
    with pytest.raises(CheckpointError, match=rf"the weights do not fit its spec \({name} is torch.float32 "
                                              r"\(10000000,\) where the spec makes torch.float32 \("):
        build(str(out / "checkpoint.pt"))


def test_a_damaged_archive_is_one_line(tmp_path):
    path = tmp_path / "bad.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"x")
    data = bytearray(path.read_bytes())
    directory = data.rfind(b"PK\x01\x02")  # the central directory's entry: its name made invalid UTF-8
    data[directory + 8: directory + 10] = (0x800).to_bytes(2, "little")
    data[directory + 46] = 0xFF
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"bad.pt cannot be read as a checkpoint \(not a whole zip archive"):
        build(str(path))


def test_a_foreign_checkpoint_is_refused_without_suggesting_to_run_its_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "cortexgraph-checkpoint", "version": 1, "spec": {}, "model": Exploit(tmp_path / "ran")},
               path)
    with pytest.raises(CheckpointError) as caught:
        build(str(path))
    message = str(caught.value)
    assert message == (f"{path} is refused: it holds objects other than tensors and plain data, such as "
                       "posix.system, which would run code when loaded; cortexgraph never loads such files")
    assert "weights_only" not in message and not (tmp_path / "ran").exists()



# --- sizes ----------------------------------------------------------------------------------------------


def chain(areas: int) -> dict:
    names = [f"A{i}" for i in range(areas)]
    transitions = {a: {a: "residual", **({b: "conv"} if b else {})} for a, b in zip(names, names[1:] + [None])}
    return {"cortexgraph": 1, "name": f"chain{areas}", "input": {"channels": 4, "size": 4},
            "areas": {a: {"channels": 4, "size": 4} for a in names}, "inputs": {"A0": "once"}, "steps": areas,
            "transitions": transitions, "readout": {"area": names[-1], "head": {"classes": 2}}}


def test_drawings_past_a_size_are_refused_and_say_how_to_draw_them(tmp_path, capsys):
    spec = tmp_path / "chain.json"
    spec.write_text(json.dumps(chain(250)))
    assert main(["draw", str(spec), "--view", "matrix", "-o", str(tmp_path / "m.svg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cortexgraph: the matrix view of chain250 has 189,001 cells, more than drawings show by "
                          "default (40,000, which Graphviz renders in seconds); draw it anyway with "
                          "--max-elements 189001")
    assert not (tmp_path / "m.svg").exists()
    assert draw(str(spec), view="matrix", max_elements=189_001).source.count("<td") > 60_000
    draw(str(spec), view="rolled")  # 250 areas, 499 edges: within the bound
    with pytest.raises(TooBigToDraw, match=r"the unrolled view of chain250 has 1,757 nodes and edges, more than "
                                           r"drawings show by default \(1,000,"):
        draw(str(spec), view="unrolled", max_elements=1000)


# --- smaller ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--schedule", "step", "--step-size", "0"], "the step schedule's step size is at least 1 epoch"),
    (["--device", "meta"], "--device meta: training runs on cpu, cuda or cuda:N (or auto), not meta"),
    (["--device", "tpu"], "--device 'tpu' is not a device; use auto, cpu, cuda or cuda:N"),
    (["--limit-batches", "0"], "limit_batches must be at least 1"),
    (["--out", ""], "the output folder is an empty name"),
    (["--seed", "-1"], "the seed must be in [0, 2**32)"),
    (["--seed", str(2**32)], "the seed must be in [0, 2**32)"),
    (["--resume", "--overwrite"], "not both"),
])
def test_bad_training_settings_are_one_line(tiny, tmp_path, capsys, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", tiny, "--quiet", *args]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("cortexgraph: ") and message in line
    assert not (tmp_path / "runs").exists()


def test_ctrl_c_says_what_was_kept_and_how_to_go_on(tiny, tmp_path, capsys, monkeypatch):
    real = training._Run._evaluate

    def evaluate(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(training._Run, "_evaluate", evaluate)
    out = tmp_path / "run"
    assert main(["train", tiny, "--epochs", "2", "--limit-batches", "1", "--out", str(out), "--quiet"]) == 130
    assert capsys.readouterr().err.strip() == (f"cortexgraph: interrupted; {out}/checkpoint.pt holds epoch 1 of 2: "
                                               "continue with the same command and --resume")


def test_draw_says_what_is_wrong_with_the_output_path(tiny, tmp_path, capsys):
    assert main(["draw", tiny, "-o", str(tmp_path / "missing" / "dir" / "g.svg")]) == 2
    assert capsys.readouterr().err.strip() == (f"cortexgraph: cannot write {tmp_path}/missing/dir/g.svg: there is "
                                               f"no folder {tmp_path}/missing/dir")
    assert main(["draw", tiny, "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"cortexgraph: cannot write {tmp_path}: it is a folder, not a file; "
                                               f"name a file in it, such as {tmp_path}/tiny-rolled.svg")


def test_compile_and_draw_take_checkpoints_as_build_does(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    train(config(tiny, out, epochs=1))
    assert main(["compile", str(out / "checkpoint.pt")]) == 0
    assert capsys.readouterr().out.startswith("tiny: input 3x8x8, 3 steps")
    assert main(["draw", str(out / "checkpoint.pt"), "-o", str(tmp_path / "g.dot")]) == 0
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["compile", str(tmp_path / "bad.pt")]) == 2
    assert "cannot be read as a checkpoint" in capsys.readouterr().err


def test_output_piped_into_a_reader_that_stops_early_is_not_an_error():
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m cortexgraph specs | head -n 0"],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
