"""Runs that go wrong say so: divergence and non-finite losses are warned about and recorded, metrics stay
valid JSON, plots do not flatter, and a non-finite stop names its place on a line of its own."""

import json
import math

import matplotlib.figure
import pytest
import torch.nn.functional as F
from torch import nn

from cortexgraph import OpContext, load_spec, register_op
from cortexgraph.cli import main
from cortexgraph.ops.registry import unregister_op
from cortexgraph.train import TrainingError, train
from cortexgraph.train.report import write_anytime, write_metrics

from .test_reliability import Poison, _NanGradient, poisoned  # noqa: F401 - a fixture
from .test_train import TINY, config, tiny  # noqa: F401 - a fixture


class Loud(nn.Module):
    """A conv whose output is 10^5 times too large: logits, and so the loss, in the hundreds of thousands."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        self.conv = nn.Conv2d(ctx.in_channels, ctx.out_channels, 3, padding=1)

    def forward(self, x, step):
        return self.conv(x) * 1e5


@pytest.fixture
def loud(tmp_path):
    register_op("loud", Loud)
    path = tmp_path / "loud.yaml"
    path.write_text(TINY.replace("B: {A: up, B: residual}", "B: {A: up, B: loud}"))
    yield str(path)
    unregister_op("loud")


def test_a_loss_is_diverging_above_a_hundred_times_a_uniform_guess():
    from cortexgraph.train.report import epoch_warnings

    classes = load_spec(TINY).readout.head.classes  # three classes: a uniform guess's loss is log 3
    chance = math.log(3)

    def warnings(loss, skipped=0):
        return epoch_warnings({"train_loss": loss, "skipped_steps": skipped, "unreadable": {"count": 0}},
                              {"test_loss": 1.0, "test_unreadable": {"count": 0}}, classes)

    assert warnings(100 * chance) == []
    assert warnings(100.5 * chance) == [
        "the train loss is 110, 1e+02 times a uniform guess's (1.10): training diverges; lower the learning rate or "
        "clip the gradients (--clip-grad)"]
    assert warnings(math.inf, skipped=3) == ["the train loss is inf: the model's outputs are not finite",
                                             "3 optimizer steps skipped (non-finite gradients)"]


def test_a_diverging_loss_is_warned_about_in_the_epoch_line_and_the_metrics(loud, tmp_path, capsys):
    result = train(config(loud, tmp_path / "run", epochs=1, progress=True))
    warnings = result["epochs"][0]["warnings"]
    assert any(w.startswith("the train loss is") and "times a uniform guess's (1.10): training diverges" in w
               for w in warnings), warnings
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch 1/1:"))
    assert "| warning: the train loss is" in line
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["epochs"][0]["warnings"] == warnings
    assert "training diverges" in (tmp_path / "run" / "metrics.csv").read_text()


def test_a_quiet_run_still_warns_and_says_its_result(loud, tmp_path, capsys):
    assert main(["train", loud, "--data", "synthetic", "--epochs", "1", "--limit-batches", "2", "--quiet",
                 "--optimizer", "adamw", "--lr", "0.003",
                 "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    assert "cortexgraph: warning: epoch 1: the train loss is" in captured.err
    assert "test accuracy by readout step: t=1 " in captured.out and "epoch 1/1" not in captured.out


def test_a_non_finite_test_loss_is_warned_about_and_written_as_null(poisoned, tmp_path):  # noqa: F811
    result = train(config(poisoned, tmp_path / "run", epochs=1, on_nonfinite="skip"))
    record = result["epochs"][0]
    assert math.isnan(record["test_loss"])
    assert "the test loss is nan: the model's outputs are not finite" in record["warnings"]
    assert "4 optimizer steps skipped (non-finite gradients)" in record["warnings"]

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    saved = json.loads((tmp_path / "run" / "metrics.json").read_text(), parse_constant=refuse)
    assert saved["epochs"][0]["test_loss"] is None


def test_metrics_hold_no_bare_nan_or_infinity(tmp_path):
    write_metrics(tmp_path, {"spec": "x"}, [{"epoch": 1, "train_loss": float("inf"), "test_loss": float("nan"),
                                             "anytime": {1: float("nan")}, "warnings": []}])
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["epochs"][0]["anytime"] == {"1": None}


def test_the_anytime_plot_spans_0_to_100_percent_with_chance_marked(tmp_path, monkeypatch):
    seen = {}
    real = matplotlib.figure.Figure.savefig

    def savefig(fig, *args, **kwargs):
        ax = fig.axes[0]
        seen["ylim"] = ax.get_ylim()
        seen["chance"] = [tuple(line.get_ydata()) for line in ax.lines if line.get_label().startswith("chance")]
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    write_anytime(tmp_path, "x", {2: 0.108, 3: 0.119}, (3,), classes=10)  # 10.8% and 11.9%: at chance
    assert seen == {"ylim": (0.0, 100.0), "chance": [(10.0, 10.0)]}


def test_a_stop_on_non_finite_values_starts_its_own_line(poisoned, tmp_path, capsys):  # noqa: F811
    status = main(["train", poisoned, "--data", "synthetic", "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1
    before = err[:err.index("cortexgraph: the loss is nan; it first appears at step 2, area B, edge B->B")]
    assert "batch" in before and before.endswith(("\n", "\r"))  # the bar was drawn, then cleared


class BadWeightGradient(nn.Module):
    """A conv whose weight gets a non-finite gradient while every value's gradient stays finite."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        self.conv = nn.Conv2d(ctx.in_channels, ctx.out_channels, 3, padding=1)

    def forward(self, x, step):
        return F.conv2d(x, _NanGradient.apply(self.conv.weight), self.conv.bias, padding=1)


def test_a_parameters_own_non_finite_gradient_is_named(tmp_path):
    register_op("badweight", BadWeightGradient)
    try:
        path = tmp_path / "spec.yaml"
        path.write_text(TINY.replace("B: {A: up, B: residual}", "B: {A: up, B: badweight}"))
        with pytest.raises(TrainingError, match=r"gradients are not finite; they start at area B, edge B->B "
                                                r"\(the gradient of edges\.B->B\.conv\.weight\) \(epoch 1"):
            train(config(str(path), tmp_path / "run"))
    finally:
        unregister_op("badweight")


def test_trouble_a_re_run_does_not_reproduce_is_said_to_be_unlocated(poisoned, tmp_path):  # noqa: F811
    Poison.first_only = True  # poisoned in the training pass only, not in the diagnosis's re-run
    Poison.calls = 2
    with pytest.raises(TrainingError, match=r"^the loss is nan; cannot say where: a re-run of this batch was "
                                            r"finite \(epoch 1, batch 1\)"):
        train(config(poisoned, tmp_path / "run"))
