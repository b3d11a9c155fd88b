"""A sweep run as an Optuna study: each trial an ordinary run folder under the sweep's folder, the study in a
SQLite file there (or a database server's URL that workers on many machines share).

A worker that dies mid-trial leaves it running in the storage; its heartbeat stops, and a worker that starts
or asks for a trial after GRACE_S seconds marks it failed and runs its settings again as a new trial
(Optuna's heartbeats and `RetryHeartbeatStaleTrialCallback`).
Finished trials are never rerun.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

from .file import Range, Sweep, set_field

HEARTBEAT_S, GRACE_S = 10, 30  # a trial whose worker has not beaten for GRACE_S seconds is stale
DIRECTIONS = {"accuracy": "maximize", "parameters": "minimize", "flops": "minimize"}


class SweepError(ValueError):
    """A sweep that cannot run here: one line says why."""


def storage_url(out: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(out / 'study.db').resolve()}"


def open_study(sweep: Sweep, out: Path, storage: str | None = None, *, create: bool = True):
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8; we rely on them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            rdb = RDBStorage(storage_url(out, storage), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                             heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's many errors: a URL that cannot be reached
        raise SweepError(f"cannot open the study's storage {storage or out / 'study.db'}: "
                         f"{str(exc).splitlines()[0]}") from None
    directions = [DIRECTIONS[name.split("@")[0]] for name in sweep.file.objectives]
    if not create:
        return optuna.load_study(study_name=sweep.name, storage=rdb, sampler=_sampler(sweep))
    return optuna.create_study(study_name=sweep.name, storage=rdb, directions=directions,
                               sampler=_sampler(sweep), load_if_exists=True)


def _sampler(sweep: Sweep):
    """Grid points are enqueued once, each taken by one worker (a grid sampler in many workers may repeat
    points); the other samplers draw."""
    import optuna

    if sweep.file.chosen_sampler == "tpe":
        return optuna.samplers.TPESampler(seed=0, multivariate=True)
    return optuna.samplers.RandomSampler(seed=0)


def grid(sweep: Sweep) -> list[dict[str, Any]]:
    """Every combination of the varied choices, in the file's order."""
    import itertools

    keys = list(sweep.file.vary)
    return [dict(zip(keys, values)) for values in itertools.product(*(sweep.file.vary[k] for k in keys))]


def run_sweep(sweep: Sweep, out: Path, workers: int = 1, storage: str | None = None) -> int:
    """Run the sweep's trials (with `workers` processes on this machine) until its budget is spent; the
    number of trials finished."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "trials").mkdir(exist_ok=True)
    study = open_study(sweep, out, storage)  # made once, before the workers race to make it
    if sweep.file.chosen_sampler == "grid" and not study.trials:
        points = grid(sweep)
        for point in points[:sweep.file.trials or len(points)]:
            study.enqueue_trial(point)
    if workers == 1:
        _work(sweep, out, storage)
    else:
        context = multiprocessing.get_context("spawn")  # each worker its own torch and its own connections
        processes = [context.Process(target=_work, args=(sweep.path, out, storage), daemon=False)
                     for _ in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    return sum(1 for t in open_study(sweep, out, storage).trials if t.state.name == "COMPLETE")


def _work(sweep: Sweep | str, out: Path, storage: str | None) -> None:
    import optuna
    from optuna.study import MaxTrialsCallback

    from .file import load_sweep

    sweep = load_sweep(sweep) if not isinstance(sweep, Sweep) else sweep
    study = open_study(sweep, out, storage)
    if sweep.file.chosen_sampler == "grid":
        def stop_when_done(study, _trial):
            if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
                study.stop()
        callbacks = [stop_when_done]
        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
            return
    else:
        callbacks = [MaxTrialsCallback(sweep.file.trials, states=(optuna.trial.TrialState.COMPLETE,))]
    study.optimize(lambda trial: run_trial(sweep, out, trial), timeout=sweep.file.timeout, callbacks=callbacks)


def trial_settings(sweep: Sweep, trial) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """What a trial runs: its spec, the spec fields it changes (by path) and its training settings."""
    from ..train.config import TrainConfig

    chosen = {}
    for key, values in sweep.file.vary.items():
        if isinstance(values, Range):
            low, high = getattr(values, values.kind)
            chosen[key] = (trial.suggest_int(key, low, high) if values.kind == "int" else
                           trial.suggest_float(key, low, high, log=values.kind == "log"))
        else:
            chosen[key] = trial.suggest_categorical(key, list(values))
    spec = chosen.pop("spec", sweep.file.spec)
    settings = {k: v for k, v in chosen.items() if k in TrainConfig.model_fields}
    fields = {k: v for k, v in chosen.items() if k not in settings}
    return spec, fields, {**sweep.file.train, **settings}


def run_trial(sweep: Sweep, out: Path, trial) -> float | tuple[float, ...]:
    import optuna

    from ..atomic import write_file
    from ..compiler import compile
    from ..spec import load_spec
    from ..summary import summarize
    from ..train import TrainConfig, train

    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    if sweep.file.chosen_sampler == "grid" and "fixed_params" not in frozen.system_attrs:
        trial.set_user_attr("surplus", True)  # another worker took the last grid point first
        trial.study.stop()
        raise optuna.TrialPruned("the grid is done")
    spec_name, fields, settings = trial_settings(sweep, trial)
    folder = out / "trials" / f"{trial.number:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    doc = load_spec(sweep.spec_path(spec_name)).to_dict()
    for path, value in fields.items():
        set_field(doc, path, value)
    spec_file = folder / "spec.json"
    write_file(spec_file, json.dumps(doc, indent=1) + "\n")  # a retried trial's folder is new: nothing replaced
    trial.set_user_attr("run", str(folder / "run"))
    trial.set_user_attr("spec", spec_name)
    config = TrainConfig(spec=str(spec_file), out=str(folder / "run"), progress=False, **settings)
    result = train(config)
    values = []
    for name in sweep.file.objectives:
        if name == "accuracy":
            values.append(float(result["test_acc"]))
        elif name.startswith("accuracy@"):
            anytime = result.get("anytime") or {}
            values.append(float(anytime.get(name.split("@")[1], anytime.get(int(name.split("@")[1]), "nan"))))
        else:
            summary = summarize(compile(str(spec_file), **config.overrides().model_dump()))
            values.append(float(summary["params" if name == "parameters" else "flops"]))
    trial.set_user_attr("pid", os.getpid())
    return values[0] if len(values) == 1 else tuple(values)
