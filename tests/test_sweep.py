"""`cortexgraph sweep` (issue 31, first part): a grid of specs and seeds as one Optuna study in a SQLite file,
each trial an ordinary run folder; workers that share it; a worker killed mid-trial; bad sweep files."""

from __future__ import annotations

import os
import re
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
    table = (out / "configurations.md").read_text().splitlines()  # as the README's tables are made
    assert table[0] == "| spec | accuracy (mean ± sd) | parameters (mean ± sd) | seeds |"
    assert [row.split(" | ")[0] for row in table[2:]] == ["| a.yaml", "| b.yaml"]
    assert re.search(r"^\| a\.yaml \| \d+\.\d\d% ± \d+\.\d\d \| [\d,]+ \| 2 \|$", table[2])  # sizes: one per spec
    assert table == capsys.readouterr().out.splitlines()[-5:-1]  # (printed before what was written)
    importance = (out / "importance.csv").read_text().splitlines()
    assert importance[0] == "field,accuracy importance,parameters importance"
    assert sorted(row.split(",")[0] for row in importance[1:]) == ["seed", "spec"]
    for plot in ("size.png", "effects.png", "curves.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"


def test_two_workers_share_the_work_each_trial_once(folder):
    assert main(["sweep", "grid.yaml", "--workers", "2"]) == 0
    done = [t for t in trials(folder / "sweeps" / "grid") if not t.user_attrs.get("surplus")]
    assert len(done) == 4 and all(t.state.name == "COMPLETE" for t in done)
    assert len({(t.params["spec"], t.params["seed"]) for t in done}) == 4
    assert len({t.user_attrs["pid"] for t in done}) == 2  # both worked


# A worker that dies (SIGKILL) as soon as its first trial has saved its first epoch.
DIES = """import os, signal, sys
from cortexgraph.cli import main
from cortexgraph.train import loop

save = loop._Run._save


def save_and_die(run, epoch):
    save(run, epoch)
    os.kill(os.getpid(), signal.SIGKILL)


loop._Run._save = save_and_die
sys.exit(main(["sweep", "grid.yaml"]))
"""


def test_a_worker_killed_mid_trial_has_that_trial_retried_from_its_checkpoint_and_no_other(folder, monkeypatch):
    import json

    import cortexgraph.sweep.study as study

    (folder / "grid.yaml").write_text(GRID.format(epochs=3, batches=2))
    (folder / "dies.py").write_text(DIES)
    worker = subprocess.run([sys.executable, "dies.py"], cwd=folder, capture_output=True, timeout=300)
    assert worker.returncode == -signal.SIGKILL
    monkeypatch.setattr(study, "GRACE_S", 1)
    monkeypatch.setattr(study, "HEARTBEAT_S", 1)
    time.sleep(2)
    assert main(["sweep", "grid.yaml"]) == 0
    done = trials(folder / "sweeps" / "grid")
    assert done[0].state.name == "FAIL"
    finished = [t for t in done if t.state.name == "COMPLETE"]
    assert sorted((t.params["spec"], t.params["seed"]) for t in finished) == [("a.yaml", 0), ("a.yaml", 1),
                                                                            ("b.yaml", 0), ("b.yaml", 1)]
    retried = next(t for t in finished if t.system_attrs.get("failed_trial") == 0)
    assert retried.params == done[0].params and retried.user_attrs["run"] == done[0].user_attrs["run"]
    run = Path(retried.user_attrs["run"])  # went on from the epoch the killed worker saved
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    folders = sorted(p.name for p in (folder / "sweeps" / "grid" / "trials").iterdir())
    assert folders == sorted(["0000"] + [f"{t.number:04d}" for t in finished if t is not retried])  # no new one


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


def test_a_hook_after_each_epoch_may_stop_a_run_which_keeps_its_checkpoint(folder):
    from cortexgraph.train import TrainConfig, train

    seen = []

    def stop_after_two(record):
        seen.append(record["epoch"])
        return "enough" if record["epoch"] == 2 else None

    config = TrainConfig(spec="a.yaml", data="digits", epochs=4, batch_size=64, limit_batches=1, out="run",
                         progress=False)
    result = train(config, on_epoch=stop_after_two)
    assert seen == [1, 2] and result["stopped"] == "enough" and len(result["epochs"]) == 2
    resumed = train(config.model_copy(update={"resume": True}))  # an ordinary run, which goes on
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3, 4] and resumed["stopped"] is None


PRUNED = """cortexgraph-sweep: 1
name: grid
spec: a.yaml
vary:
  lr: [0.01, 1.0e-7]
  seed: [0, 1]
train: {data: digits, epochs: 3, batch_size: 64, limit_batches: 6, optimizer: adamw}
pruner: median
"""


def test_a_median_pruner_stops_the_hopeless_trials_after_an_epoch(folder, monkeypatch):
    import cortexgraph.sweep.study as study

    monkeypatch.setattr(study, "PRUNER_STARTUP", 1)  # (Optuna waits for five finished trials)
    (folder / "grid.yaml").write_text(PRUNED)
    assert main(["sweep", "grid.yaml"]) == 0
    done = {(t.params["lr"], t.params["seed"]): t for t in trials(folder / "sweeps" / "grid")}
    assert done[0.01, 0].state.name == "COMPLETE" and sorted(done[0.01, 0].intermediate_values) == [1, 2, 3]
    for seed in (0, 1):  # a learning rate that learns nothing, stopped before its last epoch
        hopeless = done[1e-7, seed]
        epochs = len(hopeless.intermediate_values)
        assert hopeless.state.name == "PRUNED" and epochs < 3 and hopeless.user_attrs["epochs"] == epochs
        assert f"is below the median of earlier trials after epoch {epochs}" in hopeless.user_attrs["pruned"]
        assert (Path(hopeless.user_attrs["run"]) / "checkpoint.pt").is_file()  # an ordinary, resumable run
    assert main(["sweep", "report", "grid.yaml"]) == 0
    rows = (folder / "sweeps" / "grid" / "trials.csv").read_text().splitlines()
    assert rows[0] == "trial,state,lr,seed,accuracy,epochs,run,why"
    pruned = rows[3].split(",")  # its accuracy when it stopped, and after how many epochs
    assert pruned[:4] == ["2", "pruned", "1e-07", "0"] and pruned[5] == str(done[1e-7, 0].user_attrs["epochs"])
    assert float(pruned[4]) == done[1e-7, 0].value and "below the median" in pruned[7]
    table = (folder / "sweeps" / "grid" / "configurations.csv").read_text().splitlines()
    assert table[1].startswith("0.01,") and len(table) == 2  # a configuration of finished trials only


def test_a_trial_whose_training_fails_fails_alone(folder, capsys):
    (folder / "grid.yaml").write_text("cortexgraph-sweep: 1\nname: grid\nspec: a.yaml\n"
                                      "vary: {lr: [1.0e+30, 0.003]}\n"
                                      "train: {data: digits, epochs: 1, limit_batches: 2, optimizer: sgd}\n")
    assert main(["sweep", "grid.yaml"]) == 0
    done = trials(folder / "sweeps" / "grid")
    assert [t.state.name for t in done] == ["FAIL", "COMPLETE"]
    assert done[0].user_attrs["error"].startswith("the loss is nan; it first appears at step 1")
    assert capsys.readouterr().err.splitlines() == [  # one line, no traceback
        f"cortexgraph: grid: trial 0 failed: {done[0].user_attrs['error']}"]


@pytest.mark.parametrize("objective, message", [
    ("[accuracy, parameters]", "a study of several objectives (a Pareto front) cannot be pruned: pruner: none"),
    ("flops", "flops does not change as it trains: pruner: none"),
])
def test_a_pruner_needs_one_accuracy_to_judge(folder, capsys, objective, message):
    (folder / "bad.yaml").write_text(f"cortexgraph-sweep: 1\nspec: a.yaml\nobjective: {objective}\npruner: median\n")
    assert main(["sweep", "bad.yaml"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"bad.yaml:1:1: (document): a pruner judges a trial by its accuracy after each epoch; {message}")


def test_under_torchrun_workers_are_jobs(folder, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["sweep", "grid.yaml", "--workers", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        "cortexgraph: under torchrun each job is one worker: start more jobs rather than --workers")


def test_a_torchrun_job_is_one_worker_whose_processes_train_each_trial_together(folder):
    import json
    import socket

    with socket.socket() as s:  # a free port for the processes to meet on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = Path(sys.executable).parent / "torchrun"
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), "-m", "cortexgraph",
                           "sweep", "grid.yaml"], cwd=folder, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trials finished") == 1  # said once, by the main process
    finished = [t for t in trials(folder / "sweeps" / "grid") if t.state.name == "COMPLETE"]
    assert len(finished) == 4
    for t in finished:
        epochs = json.loads((Path(t.user_attrs["run"]) / "metrics.json").read_text())["epochs"]
        assert [e["settings"]["processes"] for e in epochs] == [2]


def test_the_example_sweeps_load_and_the_schema_editors_read_agrees(capsys):
    import json

    import jsonschema
    import yaml

    from cortexgraph.sweep import load_sweep

    assert main(["schema", "--sweep"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    check = jsonschema.Draft202012Validator(schema)
    examples = sorted((Path(__file__).parents[1] / "examples" / "sweeps").glob("*.yaml"))
    assert len(examples) >= 6
    for path in examples:
        load_sweep(path)  # each a valid sweep, its specs found and its varied fields valid in them
        assert not list(check.iter_errors(yaml.safe_load(path.read_text()))), path
    bad = {"cortexgraph-sweep": 1, "spec": "x", "train": {"epoch": 2}, "vary": {"lr": {"log": [1, 2], "x": 1}}}
    assert sorted(e.json_path for e in check.iter_errors(bad)) == ["$.train", "$.vary.lr"]
