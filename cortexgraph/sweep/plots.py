"""The report's plots, each a PNG beside its tables: accuracy against size (parameters and FLOPs) per
configuration, each varied field's effect on accuracy, and every trial's learning curve.

Accuracy is the sweep's first accuracy objective; a sweep with none (only sizes) has nothing to plot.
Points are means over seeds with their standard deviation as error bars, never single runs dressed up.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from .file import Sweep


def write_plots(sweep: Sweep, study, table: list[dict[str, Any]], out: Path) -> tuple[list[Path], list[str]]:
    """size.png, effects.png and curves.png in `out`; and notes on those that could not be drawn."""
    accuracy = next((name for name in sweep.file.objectives if name.startswith("accuracy")), None)
    if accuracy is None:
        return [], ["no plots: the sweep has no accuracy objective"]
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return [], ["no plots: no trial has finished"]
    import matplotlib

    matplotlib.use("Agg")
    position = sweep.file.objectives.index(accuracy)
    written = [_size(sweep, done, position, accuracy, out / "size.png"),
               _effects(sweep, done, position, accuracy, out / "effects.png")]
    curves = _curves(sweep, study, accuracy, out / "curves.png")
    notes = [] if curves else ["no learning curves: the trials reported no epochs, and their run folders are not here"]
    return [p for p in written + [curves] if p is not None], notes


def _label(sweep: Sweep, params: dict[str, Any]) -> str:
    return ", ".join(f"{params[k]}" if k == "spec" else f"{k}={params[k]}"
                     for k in sweep.file.vary if k != "seed" and k in params) or "all"


def _groups(sweep: Sweep, trials) -> dict[str, list]:
    """Finished trials by configuration (everything varied but the seed)."""
    groups: dict[str, list] = {}
    for trial in trials:
        groups.setdefault(_label(sweep, trial.params), []).append(trial)
    return groups


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _size(sweep: Sweep, trials, position: int, accuracy: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), dpi=130, sharey=True)
    for label, members in _groups(sweep, trials).items():
        mean, sd = _spread([100 * t.values[position] for t in members])
        for ax, size in zip(axes, ("parameters", "flops")):
            x = statistics.fmean(t.user_attrs.get(size, 0) for t in members)
            ax.errorbar([x], [mean], yerr=[sd], marker="o", capsize=3, label=label)
    for ax, size in zip(axes, ("parameters", "FLOPs per image")):
        ax.set(xlabel=size, xscale="log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{accuracy} (%, mean ± sd over seeds)")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{sweep.name}: accuracy against size")
    return _save(fig, path)


def _effects(sweep: Sweep, trials, position: int, accuracy: str, path: Path) -> Path:
    """Each varied field's values, with the accuracy of every finished trial that had it (all else pooled)."""
    import matplotlib.pyplot as plt

    fields = [k for k in sweep.file.vary if k != "seed"] or ["seed"]
    fig, axes = plt.subplots(1, len(fields), figsize=(3.2 * len(fields) + 1, 3.6), dpi=130, squeeze=False)
    for ax, field in zip(axes[0], fields):
        values = sorted({t.params[field] for t in trials}, key=repr)
        spreads = [_spread([100 * t.values[position] for t in trials if t.params[field] == v]) for v in values]
        ax.errorbar(range(len(values)), [m for m, _ in spreads], yerr=[s for _, s in spreads], marker="o",
                    capsize=3, linestyle="none")
        ax.set_xticks(range(len(values)), [str(v) for v in values], rotation=20, fontsize=7)
        ax.set(xlabel=field, xlim=(-0.5, len(values) - 0.5))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{accuracy} (%, mean ± sd)")
    fig.suptitle(f"{sweep.name}: each field's effect (other fields pooled)")
    return _save(fig, path)


def _curves(sweep: Sweep, study, accuracy: str, path: Path) -> Path | None:
    """Test accuracy after each epoch of every trial that ran one: what it reported to the study, or, for a
    study of several objectives (Optuna keeps no curves for those), its run folder's metrics.json."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    curves: dict[str, list[tuple[list[int], list[float], str]]] = {}
    for trial in study.get_trials(deepcopy=False):
        points = dict(trial.intermediate_values) or _metrics(trial.user_attrs.get("run"), accuracy)
        if points and not trial.user_attrs.get("surplus"):
            epochs = sorted(points)
            curves.setdefault(_label(sweep, trial.params), []).append(
                (epochs, [100 * points[e] for e in epochs], trial.state.name.lower()))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=130)
    for color, (label, runs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10, curves.items()):
        for i, (epochs, values, state) in enumerate(runs):
            ax.plot(epochs, values, color=color, linewidth=1.2, alpha=0.8, label=label if i == 0 else None,
                    linestyle="-" if state == "complete" else ":")
    ax.set(xlabel="epoch", ylabel=f"{accuracy} (%)", title=f"{sweep.name}: learning curves (dotted: stopped early)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _metrics(run: str | None, accuracy: str) -> dict[int, float]:
    """An accuracy per epoch from a trial's run folder, where it is on this machine."""
    from .study import objective_value

    try:
        epochs = json.loads((Path(run) / "metrics.json").read_text())["epochs"] if run else []
    except (OSError, ValueError, KeyError):
        return {}
    return {int(e["epoch"]): objective_value(accuracy, e) for e in epochs}
