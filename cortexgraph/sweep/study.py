"""A sweep run as an Optuna study: each trial an ordinary run folder under the sweep's folder, the study in a
SQLite file there (or a database server's URL that workers on many machines share).

A worker that dies mid-trial leaves it running in the storage; its heartbeat stops, and a worker that starts
or asks for a trial after GRACE_S seconds marks it failed and runs its settings again as a new trial
(Optuna's heartbeats and `RetryHeartbeatStaleTrialCallback`), which goes on in the first one's run folder
from its last checkpoint. Finished trials are never rerun.

A worker may be a torchrun job (`torchrun --nproc_per_node N -m cortexgraph sweep SWEEP`): its main process
takes each trial from the study and tells the others what to train, and all of them train it together.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

from .file import Range, Sweep, set_field

HEARTBEAT_S, GRACE_S = 10, 30  # a trial whose worker has not beaten for GRACE_S seconds is stale
PRUNER_STARTUP = 5  # the median pruner prunes no trial until this many have finished (Optuna's default)
DIRECTIONS = {"accuracy": "maximize", "parameters": "minimize", "flops": "minimize"}


class SweepError(ValueError):
    """A sweep that cannot run here: one line says why."""


def storage_url(out: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(out / 'study.db').resolve()}"


def open_study(sweep: Sweep, out: Path, storage: str | None = None, *, create: bool = True):
    import warnings

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    # A failed trial is said in one line of ours; Optuna's warning would add its traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8; we rely on them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=2, inherit_intermediate_values=True)
            url = storage_url(out, storage)
            # SQLite refuses a write while another worker writes, after 5 s by default: a heartbeat refused so
            # ends its thread (Optuna's), and the trial, alive, is then taken for dead. Wait longer.
            engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else None
            rdb = RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                             heartbeat_stale_trial_callback=retry)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's many errors: a URL that cannot be reached
        raise SweepError(f"cannot open the study's storage {_shown(storage) if storage else out / 'study.db'}: "
                         f"{str(exc).splitlines()[0]}") from None
    directions = [DIRECTIONS[name.split("@")[0]] for name in sweep.file.objectives]
    median = sweep.file.chosen_pruner == "median"
    pruner = optuna.pruners.MedianPruner(PRUNER_STARTUP) if median else optuna.pruners.NopPruner()
    if not create:
        return optuna.load_study(study_name=sweep.name, storage=rdb, sampler=_sampler(sweep), pruner=pruner)
    return optuna.create_study(study_name=sweep.name, storage=rdb, directions=directions,
                               sampler=_sampler(sweep), pruner=pruner, load_if_exists=True)


def _shown(url: str) -> str:
    """A storage URL as messages say it: its password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL: said as given
        return url


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
    from ..train import distributed as dist

    world = dist.world_from_env()
    if world.distributed and workers > 1:
        raise SweepError("under torchrun each job is one worker: start more jobs rather than --workers")
    if not world.main:
        _follow(sweep, world)
        return 0
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
        threads = max(1, (os.cpu_count() or 1) // workers)  # the cores shared out, not each worker taking all
        processes = [context.Process(target=_work, args=(sweep.path, out, storage, threads), daemon=False)
                     for _ in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    return sum(1 for t in open_study(sweep, out, storage).trials if t.state.name == "COMPLETE")


class _TrialFailed(Exception):
    """A trial's training failed (a non-finite loss, say): that trial fails, the sweep goes on."""


def _work(sweep: Sweep | str, out: Path, storage: str | None, threads: int | None = None) -> None:
    import optuna
    import torch
    from optuna.study import MaxTrialsCallback

    from ..train import distributed as dist
    from .file import load_sweep

    if threads is not None:
        torch.set_num_threads(threads)
    sweep = load_sweep(sweep) if not isinstance(sweep, Sweep) else sweep
    study = open_study(sweep, out, storage)
    world = dist.world_from_env()
    joined = dist.start(world, _device(sweep, world))  # a torchrun job's processes meet once, for every trial
    try:
        if sweep.file.chosen_sampler == "grid":
            def stop_when_done(study, _trial):
                if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
                    study.stop()
            callbacks = [stop_when_done]
            if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
                return
        else:
            callbacks = [MaxTrialsCallback(sweep.file.trials, states=(optuna.trial.TrialState.COMPLETE,))]
        while True:
            try:
                study.optimize(lambda trial: run_trial(sweep, out, trial), timeout=sweep.file.timeout,
                               callbacks=callbacks, catch=(_TrialFailed,))
                break
            except ValueError as exc:  # this worker's trial was taken for dead and retried by another worker
                if "Cannot tell a FAIL trial" not in str(exc):  # (Optuna's words, as of 4.x and 5.x)
                    raise
    finally:
        dist.from_main(None, world)  # the job's other processes: no more trials
        if joined:
            dist.stop(world)


def _device(sweep: Sweep, world):
    from ..train import distributed as dist

    return dist.device_for(sweep.file.train.get("device", "auto"), world)


def _follow(sweep: Sweep, world) -> None:
    """A torchrun job's other processes: each trial its main process announces, trained with it."""
    from ..train import RefusedRun, TrainConfig, TrainingError, train
    from ..train import distributed as dist

    joined = dist.start(world, _device(sweep, world))
    try:
        while (settings := dist.from_main(None, world)) is not None:
            try:  # (the same hook as the main process's, so that both ask whether to stop after each epoch)
                train(TrainConfig(**settings), on_epoch=(lambda _record: None) if _reporting(sweep) else None)
            except TrainingError as exc:
                if isinstance(exc, RefusedRun):
                    raise
    finally:
        if joined:
            dist.stop(world)


def _reporting(sweep: Sweep) -> bool:
    """Whether trials report each epoch's accuracy to the study (its learning curves, which a pruner judges):
    Optuna takes them from a study of one objective only."""
    return len(sweep.file.objectives) == 1 and sweep.file.objectives[0].startswith("accuracy")


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


def objective_value(name: str, record: dict[str, Any]) -> float:
    """An accuracy objective's value in a run's result or in one epoch's record."""
    if name == "accuracy":
        return float(record["test_acc"])
    anytime, step = record.get("anytime") or {}, int(name.split("@")[1])
    return float(anytime.get(step, anytime.get(str(step), "nan")))


def run_trial(sweep: Sweep, out: Path, trial) -> float | tuple[float, ...]:
    import optuna

    from ..atomic import write_file
    from ..compiler import compile
    from ..spec import load_spec
    from ..summary import summarize
    from ..train import RefusedRun, TrainConfig, TrainingError, train
    from ..train import distributed as dist

    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    if sweep.file.chosen_sampler == "grid" and "fixed_params" not in frozen.system_attrs:
        trial.set_user_attr("surplus", True)  # another worker took the last grid point first
        trial.study.stop()
        raise optuna.TrialPruned("the grid is done")
    spec_name, fields, settings = trial_settings(sweep, trial)
    first = frozen.system_attrs.get("failed_trial")  # a retried trial goes on in its first run's folder,
    if first is not None and _held(out / "trials" / f"{first:04d}" / "run"):  # unless that run is alive after all
        first = None
    folder = out / "trials" / f"{trial.number if first is None else first:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    doc = load_spec(sweep.spec_path(spec_name)).to_dict()
    for path, value in fields.items():
        set_field(doc, path, value)
    spec_file, text = folder / "spec.json", json.dumps(doc, indent=1) + "\n"
    if first is None or not spec_file.is_file():
        write_file(spec_file, text)  # a new trial's folder is new: nothing replaced
    elif spec_file.read_text() != text:
        raise SweepError(f"{spec_file} is not the spec trial {first} ran; the sweep's specs changed under it")
    run = folder / "run"
    config = TrainConfig(spec=str(spec_file), out=str(run), progress=False,
                         resume=first is not None and (run / "checkpoint.pt").is_file(), **settings)
    size = summarize(compile(str(spec_file), **config.overrides().model_dump()))  # (the report plots by size)
    sizes = {"parameters": int(size["params"]), "flops": int(size["flops"])}
    for key, value in {"run": str(run), "spec": spec_name, "pid": os.getpid(), **sizes}.items():
        trial.set_user_attr(key, value)
    world = dist.world_from_env()
    dist.from_main(config.model_dump(exclude_defaults=True), world)  # a torchrun job's others train it too
    try:
        result = train(config, on_epoch=_reporter(sweep, trial) if _reporting(sweep) else None)
    except TrainingError as exc:
        if isinstance(exc, RefusedRun):  # the folder or the settings: every trial would fail alike
            raise
        trial.set_user_attr("error", str(exc))
        print(f"cortexgraph: {sweep.name}: trial {trial.number} failed: {exc}", file=sys.stderr)
        raise _TrialFailed(str(exc)) from None
    trial.set_user_attr("epochs", len(result["epochs"]))
    if result["stopped"]:
        trial.set_user_attr("pruned", result["stopped"])
        raise optuna.TrialPruned(result["stopped"])
    values = [objective_value(name, result) if name.startswith("accuracy") else float(sizes[name])
              for name in sweep.file.objectives]
    return values[0] if len(values) == 1 else tuple(values)


def _held(run: Path) -> bool:
    """Whether a live process holds the run folder (a trial taken for dead that is not)."""
    from ..lock import InUse, Lock

    try:
        Lock.in_folder(run).check_free()
    except InUse:
        return True
    except OSError:
        return False
    return False


def _reporter(sweep: Sweep, trial):
    """Each epoch's accuracy reported to the study; the study's pruner says whether the trial stops."""
    name = sweep.file.objectives[0]

    def report(record: dict[str, Any]) -> str | None:
        value = objective_value(name, record)
        trial.report(value, record["epoch"])
        if trial.should_prune():
            return f"{name} {100 * value:.1f}% is below the median of earlier trials after epoch {record['epoch']}"
        return None
    return report
