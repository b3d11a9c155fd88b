"""`cortexgraph probe`: an in-silico experiment on a model (experiments.py has the paradigms): each area's
mean response at every step, and accuracy at every readout step, per condition.

The model is run on the frames each condition shows, as a sequence (`input.stimulus: {frames: hold}`, its
weights unchanged), so what reaches it at each step is what its input edges take then: a spec whose
input fires once sees only step 0's frame, and the probe says so. An area's response is the magnitude of
its activity, the mean absolute value over images, channels and space (an area's state may be signed: a
residual stream's sum, a linear cell's; for a ReLU area it is the mean); the *evoked* response is the
response less the blank's at the same step (every experiment runs the blank too), so an area's resting
activity is not mistaken for a response.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .experiments import Context, Experiment


@dataclass
class ProbeResult:
    experiment: Experiment
    levels: list
    areas: list[str]
    steps: int
    readout_steps: list[int]  # the steps accuracy is read at (every step from the first the readout has signal)
    response: dict[Any, dict[tuple[str, int], float]]  # level ("blank" for the blank) -> (area, step) -> mean |x|
    accuracy: dict[Any, dict[int, float]] = field(default_factory=dict)  # level -> step -> accuracy
    warnings: list[str] = field(default_factory=list)
    dt_ms: float | None = None  # the spec's step length: times said in ms too

    def evoked(self, level: Any, area: str, step: int) -> float:
        return self.response[level][area, step] - self.response["blank"][area, step]

    def rows(self) -> list[dict[str, Any]]:
        """One row per level and step: accuracy there, and each area's response and evoked response."""
        rows = []
        for level in self.levels:
            for step in range(self.steps + 1):
                row: dict[str, Any] = {self.experiment.parameter: level, "step": step}
                if self.dt_ms:
                    row["time (ms)"] = step * self.dt_ms
                row["accuracy"] = self.accuracy.get(level, {}).get(step, "")
                for area in self.areas:
                    value = self.response[level].get((area, step))
                    row[f"{area} response"] = "" if value is None else value
                    row[f"{area} evoked"] = "" if value is None else self.evoked(level, area, step)
                rows.append(row)
        return rows

    def summary(self) -> list[dict[str, Any]]:
        """Per level: accuracy at the last step, and each area's peak evoked response and its step (for
        `interval`, also the second showing's evoked response over the first's)."""
        table = []
        for level in self.levels:
            entry: dict[str, Any] = {self.experiment.parameter: level}
            if self.accuracy.get(level):
                entry["accuracy"] = self.accuracy[level][self.readout_steps[-1]]
            for area in self.areas:
                course = {t: self.evoked(level, area, t) for (a, t) in self.response[level] if a == area}
                peak = max(course, key=lambda t: abs(course[t]))
                entry[f"{area} peak"], entry[f"{area} peak step"] = course[peak], peak
                if self.dt_ms:
                    entry[f"{area} peak (ms)"] = peak * self.dt_ms
                if self.experiment.name == "interval":
                    entry[f"{area} second/first"] = self._second_over_first(level, area, course)
            table.append(entry)
        return table

    def _second_over_first(self, gap: int, area: str, course: dict[int, float]) -> float:
        """The evoked response at the area's latency after the second showing (step gap + 1) over that after
        the first (step 0); the latency is the first step at which the area holds a value. nan where the
        first evokes nothing, or the second's comes after the last step."""
        lag = min(course)
        second = lag + gap + 1
        if second not in course or course[lag] == 0:
            return math.nan
        return course[second] / course[lag]


def frames_model(model):
    """The model, taking its input as a sequence of frames (one per step), with the same weights."""
    from .builder import build

    doc = model.spec.to_dict()
    doc["input"] = {**doc["input"], "stimulus": {"frames": "hold"}}
    variant = build(doc)
    variant.load_state_dict(model.state_dict())
    return variant.to(next(model.parameters(), torch.empty(0)).device).eval()


@torch.no_grad()
def probe(model, images: Tensor, labels: Tensor | None, experiment: Experiment, levels: list | None = None,
          batch_size: int = 128, device: torch.device | str = "cpu", masks: Tensor | None = None,
          seed: int = 0) -> ProbeResult:
    """Run `experiment` on `images` (N, C, H, W, normalised as the model was trained on), with `labels` where
    accuracy is wanted; `masks`, one per image, for experiments that need one."""
    if experiment.needs_mask and masks is None:
        raise ValueError(f"the {experiment.name} experiment shows a mask after the image; give masks")
    net = frames_model(model.to(device))
    steps = net.spec.steps
    length = steps + 1  # frames for steps 0 to `steps`
    levels = list(experiment.levels(length) if levels is None else levels)
    blank = 0.0
    areas = list(net.spec.areas)
    entering = net.plan.frames_entering()
    warnings = []
    if len(entering) == 1:
        warnings.append(f"{net.spec.name}'s input enters only at step {min(entering)}: what is shown after it "
                        f"never reaches the network, so conditions that differ only later look the same")
    sums: dict[Any, dict[tuple[str, int], float]] = {}
    correct: dict[Any, dict[int, float]] = {}
    readout_steps: list[int] = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        context = Context(blank, None if masks is None else masks[start:start + batch_size].to(device),
                          torch.Generator().manual_seed(seed * 1_000_003 + start))
        for level in ["blank", *levels]:
            state = context.generator.get_state()  # every level sees the same noise and patches
            frames = (x.new_full((len(x), length, *x.shape[1:]), blank) if level == "blank" else
                      experiment.frames(x, length, level, context))
            context.generator.set_state(state)
            logits, states = net(frames, readout="all", return_states=True)
            into = sums.setdefault(level, {})
            for key, value in states.items():
                into[key] = into.get(key, 0.0) + float(value.double().abs().mean(tuple(range(1, value.dim()))).sum())
            if labels is not None and level != "blank":
                y = labels[start:start + batch_size].to(device)
                right = correct.setdefault(level, {})
                for step, out in logits.items():
                    right[step] = right.get(step, 0.0) + float((out.argmax(1) == y).sum())
            readout_steps = sorted(logits)
    n = len(images)
    response = {level: {key: total / n for key, total in by.items()} for level, by in sums.items()}
    accuracy = {level: {step: c / n for step, c in by.items()} for level, by in correct.items()}
    return ProbeResult(experiment, levels, areas, steps, readout_steps, response, accuracy, warnings, net.spec.dt_ms)


def write_probe(result: ProbeResult, out, about: dict[str, Any], overwrite: bool = False) -> list:
    """NAME.csv (every level and step), NAME-summary.csv, NAME.png and NAME.json (what was probed: the
    model, its checkpoint's digest, the stimuli, the levels) in the folder `out`, holding its lock; an
    experiment's earlier files are replaced only with `overwrite`, and every target is checked first."""
    import json
    from pathlib import Path

    from .atomic import check_target, make_folders, remove_empty, write_file
    from .lock import Lock
    from .tables import as_csv

    out = Path(out)
    name = result.experiment.name
    hint = "pass --overwrite to replace it, or choose another --out"
    paths = [out / f"{name}.csv", out / f"{name}-summary.csv", out / f"{name}.png", out / f"{name}.json"]
    if out.is_symlink():
        from .atomic import link_refusal

        raise link_refusal(out)
    made = make_folders(out)
    lock = Lock.in_folder(out)
    try:
        lock.hold("writer")
        for path in paths:
            check_target(path, replace=overwrite, hint=hint)
    except BaseException:
        lock.release()
        remove_empty(made)  # a refused probe leaves nothing behind
        raise
    try:
        write_file(paths[0], as_csv(result.rows()), replace=overwrite, hint=hint)
        write_file(paths[1], as_csv(result.summary()), replace=overwrite, hint=hint)
        plot_probe(result, paths[2], overwrite, hint)
        manifest = {**about, "experiment": name, "parameter": result.experiment.parameter, "levels": result.levels,
                    "steps": result.steps, "readout_steps": result.readout_steps, "warnings": result.warnings}
        write_file(paths[3], json.dumps(manifest, indent=2) + "\n", replace=overwrite, hint=hint)
    finally:
        lock.release()
    return paths


def plot_probe(result: ProbeResult, path, replace: bool, hint: str) -> None:
    """One panel per area: its evoked response over steps, a line per level; and, where the experiment is
    about recognition, accuracy at the last readout step against the level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_path

    panels = len(result.areas) + (1 if result.accuracy else 0)
    fig, axes = plt.subplots(1, panels, figsize=(3.1 * panels + 0.6, 3.3), dpi=130, squeeze=False)
    colors = plt.get_cmap("viridis")
    for ax, area in zip(axes[0], result.areas):
        for i, level in enumerate(result.levels):
            steps = sorted(t for (a, t) in result.response[level] if a == area)
            ax.plot(steps, [result.evoked(level, area, t) for t in steps], marker="o", markersize=2.5,
                    color=colors(i / max(1, len(result.levels) - 1)), label=str(level))
        ax.set(title=area, xlabel=f"step ({result.dt_ms:g} ms each)" if result.dt_ms else "step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("evoked response (mean |activity|)")
    axes[0][len(result.areas) - 1].legend(title=result.experiment.parameter, fontsize=6, title_fontsize=7)
    if result.accuracy:
        ax = axes[0][-1]
        last = result.readout_steps[-1]
        ax.plot([str(level) for level in result.levels], [100 * result.accuracy[lv][last] for lv in result.levels],
                marker="o")
        ax.set(title=f"accuracy at step {last}", xlabel=result.experiment.parameter, ylabel="%", ylim=(0, 100))
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result.experiment.name}")
    fig.tight_layout()
    with atomic_path(path, replace, hint) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
