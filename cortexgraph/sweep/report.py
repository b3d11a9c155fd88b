"""`cortexgraph sweep report`: every trial of a study as a CSV row, and each configuration's mean and standard
deviation over its seeds (and, with several objectives, the Pareto front), from the study's storage."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path
from typing import Any

from .file import Sweep


def trial_rows(sweep: Sweep, study) -> list[dict[str, Any]]:
    """One row per trial that ran (grid surplus left out): its number, state, settings, values and folder."""
    names = sweep.file.objectives
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("surplus"):
            continue
        values = trial.values or [None] * len(names)
        rows.append({"trial": trial.number, "state": trial.state.name.lower(), **trial.params,
                     **dict(zip(names, values)), "run": trial.user_attrs.get("run", "")})
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


def as_csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def as_table(sweep: Sweep, table: list[dict[str, Any]]) -> str:
    """Each configuration's objectives as `mean ± sd (n seeds)`."""
    keys = [k for k in sweep.file.vary if k != "seed"]
    head = keys + [f"{name} (mean ± sd)" for name in sweep.file.objectives] + ["seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for entry in table:
        cells = [str(entry[k]) for k in keys]
        for name in sweep.file.objectives:
            scale, unit = (100, "%") if name.startswith("accuracy") else (1, "")
            cells.append(f"{scale * entry[f'{name} mean']:.4g}{unit} ± {scale * entry[f'{name} sd']:.2g}{unit}")
        lines.append("| " + " | ".join(cells + [str(entry["seeds"])]) + " |")
    return "\n".join(lines)


def write_report(sweep: Sweep, out: Path, study) -> list[Path]:
    """trials.csv, configurations.csv and, with several objectives, pareto.csv in `out`, each written whole."""
    from ..atomic import write_file

    rows = trial_rows(sweep, study)
    table = configurations(sweep, rows)
    written = [out / "trials.csv", out / "configurations.csv"]
    write_file(written[0], as_csv(rows), replace=True)
    write_file(written[1], as_csv(table), replace=True)
    if len(sweep.file.objectives) > 1:
        front = {t.number for t in study.best_trials}
        written.append(out / "pareto.csv")
        write_file(written[2], as_csv([r for r in rows if r["trial"] in front]), replace=True)
    return written
