"""`cortexgraph sweep report`: every trial of a study as a CSV row; each configuration's mean and standard
deviation over its seeds (a CSV, and a Markdown table as the README's); with several objectives, the Pareto
front; the importance of each varied field (Optuna's fANOVA); and plots (plots.py). All from the study's
storage, so a report can be made on any machine that reaches it."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..tables import as_csv
from .file import Sweep


def trial_rows(sweep: Sweep, study) -> list[dict[str, Any]]:
    """One row per trial that ran (grid surplus left out): its number, state, settings, values and folder."""
    names = sweep.file.objectives
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("surplus"):
            continue
        values = trial.values or [None] * len(names)
        why = trial.user_attrs.get("pruned") or trial.user_attrs.get("error") or ""
        rows.append({"trial": trial.number, "state": trial.state.name.lower(), **trial.params,
                     **dict(zip(names, values)), "epochs": trial.user_attrs.get("epochs", ""),
                     "run": trial.user_attrs.get("run", ""), "why": why})
    return rows


def configurations(sweep: Sweep, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished trials grouped by everything that varies but the seed: each objective's mean and standard
    deviation over the seeds, and how many there were."""
    keys = [k for k in sweep.file.vary if k != "seed"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["state"] == "complete":
            groups.setdefault(tuple(row.get(k) for k in keys), []).append(row)
    table = []
    for config, members in groups.items():
        entry: dict[str, Any] = dict(zip(keys, config))
        entry["seeds"] = len(members)
        for name in sweep.file.objectives:
            values = [float(m[name]) for m in members]
            entry[f"{name} mean"] = statistics.fmean(values)
            entry[f"{name} sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        table.append(entry)
    return table


def as_table(sweep: Sweep, table: list[dict[str, Any]]) -> str:
    """Each configuration's objectives as `mean ± sd (n seeds)`."""
    keys = [k for k in sweep.file.vary if k != "seed"]
    head = keys + [f"{name} (mean ± sd)" for name in sweep.file.objectives] + ["seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for entry in table:
        cells = [str(entry[k]) for k in keys]
        for name in sweep.file.objectives:
            mean, sd = entry[f"{name} mean"], entry[f"{name} sd"]
            if name.startswith("accuracy"):
                cells.append(f"{100 * mean:.2f}% ± {100 * sd:.2f}")
            else:  # a size: the same for every seed of a configuration
                cells.append(f"{mean:,.0f}" + (f" ± {sd:,.0f}" if sd else ""))
        lines.append("| " + " | ".join(cells + [str(entry["seeds"])]) + " |")
    return "\n".join(lines)


def importance(sweep: Sweep, study) -> tuple[list[dict[str, Any]], str]:
    """How much of each objective's variance over the finished trials each varied field explains (fANOVA on
    a random forest, seeded), one row per field; or, where it cannot be said, why not."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varied = [k for k in sweep.file.vary if len({repr(t.params.get(k)) for t in done}) > 1]
    if len(done) < 2 or not varied:
        return [], "the importance of fields needs two finished trials that differ"
    rows = {key: {"field": key} for key in varied}
    for i, name in enumerate(sweep.file.objectives):
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied,
                                                        target=lambda t, i=i: t.values[i])
        for key, value in found.items():
            rows[key][f"{name} importance"] = value
    return sorted(rows.values(), key=lambda r: -r[f"{sweep.file.objectives[0]} importance"]), ""


def write_report(sweep: Sweep, out: Path, study) -> tuple[list[Path], list[str]]:
    """trials.csv, configurations.csv and .md, importance.csv, the plots and, with several objectives,
    pareto.csv in `out`, each written whole (replacing an earlier report's); and notes on what was not."""
    from ..atomic import write_file
    from .plots import write_plots

    rows = trial_rows(sweep, study)
    table = configurations(sweep, rows)
    files = {"trials.csv": as_csv(rows), "configurations.csv": as_csv(table),
             "configurations.md": as_table(sweep, table) + "\n"}
    if len(sweep.file.objectives) > 1:
        front = {t.number for t in study.best_trials}
        files["pareto.csv"] = as_csv([r for r in rows if r["trial"] in front])
    weights, why_not = importance(sweep, study)
    notes = [why_not] if why_not else []
    if weights:
        files["importance.csv"] = as_csv(weights)
    written = []
    for name, text in files.items():
        write_file(out / name, text, replace=True)
        written.append(out / name)
    plots, unplotted = write_plots(sweep, study, table, out)
    return written + plots, notes + unplotted
