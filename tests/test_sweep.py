"""`cortexgraph sweep` (issue 31, first part): a grid of specs and seeds as one Optuna study in a SQLite file,
each trial an ordinary run folder; workers that share it; a worker killed mid-trial; bad sweep files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cortexgraph.cli import main

optuna = pytest.importorskip("optuna")

SPEC = """
cortexgraph: 1
name: {name}
input: {{channels: 1, size: 8}}
prenet: [{{conv: {{out: 4}}}}]
areas:
  A: {{channels: 4, size: 8}}
  B: {{channels: 4, size: 4}}
inputs: {{A: once}}
steps: {steps}
transitions:
  A: {{A: residual, B: down}}
  B: {{A: up, B: residual}}
readout: {{area: B, head: {{classes: 10}}}}
"""

GRID = """cortexgraph-sweep: 1
name: grid
vary:
  spec: [a.yaml, b.yaml]
  seed: [0, 1]
train: {{data: digits, epochs: {epochs}, batch_size: 64, limit_batches: {batches}}}
objective: [accuracy, parameters]
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text(SPEC.format(name="a", steps=2))
    (tmp_path / "b.yaml").write_text(SPEC.format(name="b", steps=3))
    (tmp_path / "grid.yaml").write_text(GRID.format(epochs=1, batches=2))
    return tmp_path


def trials(out: Path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'study.db'}")
    return optuna.load_study(study_name="grid", storage=storage).get_trials()


def test_a_grid_of_two_specs_and_two_seeds(folder, capsys):
    assert main(["sweep", "grid.yaml"]) == 0
    out = folder / "sweeps" / "grid"
    done = trials(out)
    assert sorted((t.params["spec"], t.params["seed"]) for t in done) == [("a.yaml", 0), ("a.yaml", 1),
                                                                        ("b.yaml", 0), ("b.yaml", 1)]
    assert all(t.state.name == "COMPLETE" for t in done)
    for t in done:  # each trial an ordinary run folder
        assert (Path(t.user_attrs["run"]) / "checkpoint.pt").is_file()
    assert main(["sweep", "grid.yaml"]) == 0 and len(trials(out)) == 4  # finished trials never rerun
    assert main(["sweep", "report", "grid.yaml"]) == 0
    rows = (out / "configurations.csv").read_text().splitlines()
    assert rows[0] == "spec,seeds,accuracy mean,accuracy sd,parameters mean,parameters sd"
    assert [r.split(",")[:2] for r in rows[1:]] == [["a.yaml", "2"], ["b.yaml", "2"]]
    assert len((out / "trials.csv").read_text().splitlines()) == 5 and (out / "pareto.csv").is_file()


def test_two_workers_share_the_work_each_trial_once(folder):
    assert main(["sweep", "grid.yaml", "--workers", "2"]) == 0
    done = [t for t in trials(folder / "sweeps" / "grid") if not t.user_attrs.get("surplus")]
    assert len(done) == 4 and all(t.state.name == "COMPLETE" for t in done)
    assert len({(t.params["spec"], t.params["seed"]) for t in done}) == 4
    assert len({t.user_attrs["pid"] for t in done}) == 2  # both worked


def test_a_worker_killed_mid_trial_has_that_trial_retried_and_no_other(folder, monkeypatch):
    import cortexgraph.sweep.study as study

    (folder / "grid.yaml").write_text(GRID.format(epochs=30, batches="null"))  # long enough to be killed in
    worker = subprocess.Popen([sys.executable, "-m", "cortexgraph", "sweep", "grid.yaml"], cwd=folder,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = folder / "sweeps" / "grid" / "trials" / "0000" / "run" / "checkpoint.pt"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline:  # killed once it has saved an epoch
        time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    (folder / "grid.yaml").write_text(GRID.format(epochs=1, batches=2))
    (folder / "sweeps" / "grid" / "sweep.yaml").write_text(GRID.format(epochs=1, batches=2))  # (for the test)
    monkeypatch.setattr(study, "GRACE_S", 1)
    monkeypatch.setattr(study, "HEARTBEAT_S", 1)
    time.sleep(2)
    assert main(["sweep", "grid.yaml"]) == 0
    done = trials(folder / "sweeps" / "grid")
    states = {t.number: t.state.name for t in done}
    assert states[0] == "FAIL"
    finished = [t for t in done if t.state.name == "COMPLETE"]
    assert sorted((t.params["spec"], t.params["seed"]) for t in finished) == [("a.yaml", 0), ("a.yaml", 1),
                                                                            ("b.yaml", 0), ("b.yaml", 1)]
    assert done[0].params in [t.params for t in finished if t.number > 0]  # its settings ran again


def test_a_sweep_folder_holds_one_sweep_file(folder, capsys):
    assert main(["sweep", "grid.yaml"]) == 0
    (folder / "grid.yaml").write_text(GRID.format(epochs=2, batches=2))
    assert main(["sweep", "grid.yaml"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cortexgraph: sweeps/grid holds a sweep made from another file (sweeps/grid/sweep.yaml); run it with "
        "that file, or give this one another --out")


@pytest.mark.parametrize("text, message", [
    ("cortexgraph-sweep: 1\nspec: a.yaml\nvary: {seed: [0, 1]}\ntrials: 0\n",
     "bad.yaml:4:9: trials: must be >= 1, got 0"),
    ("cortexgraph-sweep: 1\nvary: {seed: [0, 1]}\n",
     "bad.yaml:1:1: (document): a sweep needs a spec to start from: spec: NAME, or vary: {spec: [A, B]}"),
    ("cortexgraph-sweep: 1\nspec: a.yaml\nvary: {lr: {log: [0.001, 0.1]}}\nsampler: grid\n",
     "bad.yaml:1:1: (document): a grid sweep varies by choices only; give lists, or sampler: random or tpe"),
    ("cortexgraph-sweep: 1\nspec: a.yaml\nvary: {lr: {log: [0.001, 0.1]}}\n",
     "bad.yaml:1:1: (document): a tpe sweep needs a budget: trials: N"),
    ("cortexgraph-sweep: 1\nspec: a.yaml\nvary: {lr: {log: [0.1, 0.001]}}\ntrials: 3\n",
     "bad.yaml:3:12: vary.lr: log range [0.1, 0.001] must rise from above 0"),
    ("cortexgraph-sweep: 1\nspec: a.yaml\nvary: {seed: []}\n", "bad.yaml:3:7: vary: seed varies over no values"),
    ("cortexgraph-sweep: 1\nspec: a.yaml\nobjective: speed\n",
     "bad.yaml:3:12: objective: objective 'speed' is accuracy, accuracy@STEP, parameters or flops"),
    ("cortexgraph-sweep: 1\nspec: a.yaml\ntrain: {lr: 0.1, epoch: 2}\n",
     "bad.yaml:3:25: train.epoch: epoch is not a training setting (one of "),
    ("cortexgraph-sweep: 1\nspec: a.yaml\ntrain: {lr: -1}\n", "bad.yaml:3:8: train: learning rate must be positive"),
    ("cortexgraph-sweep: 1\nspec: a.yaml\nvary: {out: [x, y]}\n",
     "bad.yaml:3:13: vary.out: out is the sweep's to choose, not a setting to vary"),
    ("cortexgraph-sweep: 1\nspec: a.yaml\nsamplr: grid\n", "bad.yaml:3:1: samplr: unknown field"),
])
def test_a_bad_sweep_file_is_located_and_nothing_runs(folder, capsys, text, message):
    (folder / "bad.yaml").write_text(text)
    assert main(["sweep", "bad.yaml"]) == 2
    assert message in capsys.readouterr().err
    assert not (folder / "sweeps").exists()


def test_the_sweep_s_other_refusals_are_one_line(folder, capsys):
    assert main(["sweep", "report", "grid.yaml"]) == 2
    assert capsys.readouterr().err.strip() == ("cortexgraph: sweeps/grid holds no study of grid; run cortexgraph "
                                               "sweep grid.yaml first")
    assert main(["sweep", "grid.yaml", "--storage", "nosuchdb://x"]) == 2
    assert capsys.readouterr().err.strip().startswith("cortexgraph: cannot open the study's storage nosuchdb://x: ")
    (folder / "field.yaml").write_text("cortexgraph-sweep: 1\nname: field\nspec: a.yaml\nvary: {nowhere.x: [1]}\n"
                                       "train: {data: digits, epochs: 1, limit_batches: 1}\n")
    assert main(["sweep", "field.yaml"]) == 2  # found before any trial runs
    assert capsys.readouterr().err.strip() == (
        "field.yaml:4:19: vary['nowhere.x']: 1 does not make a valid spec of a.yaml (unknown field 'nowhere')")
    assert not (folder / "sweeps" / "field").exists()
    (folder / "range.yaml").write_text("cortexgraph-sweep: 1\nspec: a.yaml\nvary: {lr: {log: [0.1, 1], int: [1, 2]}}\n"
                                       "trials: 2\n")
    assert main(["sweep", "range.yaml"]) == 2
    assert ("vary.lr: a range is one of {log: [low, high]}, {linear: [low, high]} or {int: [low, high]}"
            in capsys.readouterr().err)
    from cortexgraph.sweep import load_sweep

    (folder / "int.yaml").write_text("cortexgraph-sweep: 1\nspec: a.yaml\nvary: {epochs: {int: [1, 3]}}\ntrials: 2\n")
    assert load_sweep(folder / "int.yaml").file.vary["epochs"].int == (1, 3)  # an int range is one
