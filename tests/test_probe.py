"""`cortexgraph probe` (issue 32): each paradigm tested for what it must show by construction, on a small
network whose input enters at every step, and on CORnet-RT against CORnet-Z at random weights."""

from __future__ import annotations

import json

import pytest
import torch

from cortexgraph import build, register_experiment
from cortexgraph.cli import main
from cortexgraph.experiments import EXPERIMENTS, experiment
from cortexgraph.probe import probe

SPEC = {"cortexgraph": 1, "name": "every", "input": {"channels": 1, "size": 8},
        "prenet": [{"conv": {"out": 4}}],
        "areas": {"A": {"channels": 4, "size": 8}, "B": {"channels": 4, "size": 4}},
        "inputs": {"A": "every"}, "steps": 4,
        "transitions": {"A": {"A": "residual", "B": "down"}, "B": {"A": "up", "B": "residual"}},
        "readout": {"area": "B", "head": {"classes": 10}}}


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build(SPEC).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def states_of(spec: dict, model, x: torch.Tensor) -> dict:
    """Each (area, step)'s mean response of `spec` (the model's weights) run as the spec says, by hand."""
    variant = build(spec).eval()
    variant.load_state_dict(model.state_dict())
    with torch.no_grad():
        _, states = variant(x, readout="all", return_states=True)
    return {key: float(v.double().abs().mean()) for key, v in states.items()}


def test_a_duration_of_one_step_is_a_stimulus_shown_at_step_0_only(net, images):
    result = probe(net, images, None, experiment("duration"))
    assert result.levels == [1, 2, 3, 4, 5] and not result.warnings
    shown_once = {**SPEC, "input": {**SPEC["input"], "stimulus": {"show": {"to": 0}, "then": "blank"}}}
    expected = states_of(shown_once, net, images)
    assert result.response[1] == pytest.approx(expected, abs=1e-6)
    assert result.response[5] == pytest.approx(states_of(SPEC, net, images), abs=1e-6)  # shown throughout


def test_an_interval_of_no_gap_is_one_longer_showing(net, images):
    interval = probe(net, images, None, experiment("interval"))
    duration = probe(net, images, None, experiment("duration"), levels=[2])
    assert interval.levels == [0, 1, 2, 3]
    assert interval.response[0] == pytest.approx(duration.response[2], abs=1e-9)
    gap = interval.summary()[1]  # a gap of one step: the second showing at step 2
    assert gap["A second/first"] == pytest.approx(interval.evoked(1, "A", 2) / interval.evoked(1, "A", 0))


def test_zero_contrast_is_the_blank(net, images):
    result = probe(net, images, None, experiment("contrast"))
    assert result.levels[0] == 0.0
    assert all(result.evoked(0.0, a, t) == 0 for a, t in result.response[0.0])
    assert any(result.evoked(1.0, a, t) != 0 for a, t in result.response[1.0])


def test_noise_and_occlusion_are_drawn_once_per_image_and_start_from_the_clean_image(net, images):
    labels = torch.arange(6)
    for name in ("noise", "occlusion"):
        first = probe(net, images, labels, experiment(name), seed=3)
        again = probe(net, images, labels, experiment(name), seed=3)
        assert first.response == again.response and first.accuracy == again.accuracy
        clean = first.levels[0]
        assert clean == 0.0 and all(first.evoked(clean, a, t) == pytest.approx(
            probe(net, images, None, experiment("contrast"), levels=[1.0]).evoked(1.0, a, t)) for a, t in
            first.response[clean])
        assert sorted(first.accuracy[clean]) == first.readout_steps == [1, 2, 3, 4]


def test_a_mask_follows_the_image_after_the_steps_given(net, images):
    masks = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    result = probe(net, images, torch.arange(6), experiment("mask"), masks=masks)
    masked_after_one = {**SPEC, "input": {**SPEC["input"], "stimulus": {"show": {"to": 0}, "then": "mask"}}}
    variant = build(masked_after_one).eval()
    variant.load_state_dict(net.state_dict())
    with torch.no_grad():
        _, states = variant(images, readout="all", return_states=True, mask=masks)
    assert result.response[1] == pytest.approx({k: float(v.double().abs().mean()) for k, v in states.items()},
                                               abs=1e-6)
    with pytest.raises(ValueError, match="the mask experiment shows a mask after the image; give masks"):
        probe(net, images, None, experiment("mask"))


def test_only_a_recurrent_model_can_differ_over_time():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    feedforward = probe(build("cornet/cornet-z", size=32), x, None, experiment("duration"), levels=[1, 2])
    assert feedforward.response[1] == feedforward.response[2]  # one sweep at step 0: nothing after it counts
    assert feedforward.warnings == ["cornet-z's input enters only at step 0: what is shown after it never reaches "
                                    "the network, so conditions that differ only later look the same"]
    recurrent = probe(build("cornet/cornet-rt", size=32), x, None, experiment("duration"), levels=[1, 2])
    assert recurrent.response[1]["IT", 3] == recurrent.response[2]["IT", 3]  # (the image of step 0 reaches IT)
    assert recurrent.response[1]["IT", 4] != recurrent.response[2]["IT", 4]  # step 1's image arrives at step 4


def test_a_lab_registers_its_own_experiment(net, images):
    @register_experiment("flicker", levels=[1, 2], parameter="period (steps)")
    def flicker(images, steps, level, context):
        """Shown for `level` steps, blank for `level`, and so on."""
        return context.sequence(images, torch.arange(steps) % (2 * level) < level)

    try:
        result = probe(net, images, None, experiment("flicker"))
        assert result.levels == [1, 2]
        assert result.experiment.doc == "Shown for `level` steps, blank for `level`, and so on."
    finally:
        del EXPERIMENTS["flicker"]
    with pytest.raises(ValueError, match="an experiment's name is a word"):
        register_experiment("a b", levels=[1], parameter="x")
    with pytest.raises(ValueError, match=r"no experiment 'flicker'; the experiments are contrast, duration, "):
        experiment("flicker")


def test_the_command_writes_its_tables_figure_and_manifest(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "every.json").write_text(json.dumps(SPEC))
    args = ["probe", "every.json", "--experiment", "contrast", "--levels", "0,0.5,1", "--data", "digits", "--limit",
            "20", "--out", "out"]
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "| contrast | accuracy | A peak, at step | B peak, at step |"
    assert printed[2].startswith("| 0 | ")
    assert printed[-1] == "wrote out/contrast.csv, out/contrast-summary.csv, out/contrast.png, out/contrast.json"
    rows = (tmp_path / "out" / "contrast.csv").read_text().splitlines()
    assert rows[0] == "contrast,step,accuracy,A response,A evoked,B response,B evoked"
    assert len(rows) == 1 + 3 * 5  # three levels, steps 0 to 4
    manifest = json.loads((tmp_path / "out" / "contrast.json").read_text())
    assert manifest["levels"] == [0, 0.5, 1] and manifest["stimuli"]["images"] == 20
    assert (tmp_path / "out" / "contrast.png").read_bytes()[:4] == b"\x89PNG"
    assert main(args) == 2  # never replaced unless asked
    assert capsys.readouterr().err.strip() == ("cortexgraph: cannot write out/contrast.csv: it already exists; "
                                               "pass --overwrite to replace it, or choose another --out")
    assert main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--experiment", "nosuch"], "no experiment 'nosuch'; the experiments are contrast, duration, interval, mask, "
                                 "noise, occlusion"),
    (["--experiment", "contrast", "--levels", "0,x"], "argument --levels: 'x' is not a number; give levels as 0,0.5,1"),
])
def test_bad_probes_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "every.json").write_text(json.dumps(SPEC))
    try:
        code = main(["probe", "every.json", "--data", "digits", "--limit", "5", *args])
    except SystemExit as exc:  # argparse's refusal: a usage line, then the one line
        code = exc.code
    assert code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(message)
    assert not (tmp_path / "probes").exists()


def test_a_spec_that_says_how_long_a_step_lasts_gets_its_latencies_in_ms(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dt.json").write_text(json.dumps({**SPEC, "dt_ms": 10}))
    assert main(["compile", "dt.json"]) == 0
    summary = capsys.readouterr().out.splitlines()
    assert summary[0] == "every: input 1x8x8, 4 steps of 10 ms, readout B at step 4 (40 ms)"
    assert summary[5].split()[0] == "B" and summary[5].endswith("1 (10 ms)")  # arrival
    assert main(["validate", "dt.json"]) == 0
    assert capsys.readouterr().out.strip().endswith("signal reaches A 0 (0 ms), B 1 (10 ms)")
    assert main(["probe", "dt.json", "--experiment", "duration", "--levels", "1", "--data", "digits",
                 "--limit", "4", "--out", "out"]) == 0
    assert capsys.readouterr().out.splitlines()[2].endswith(" at 4 (40 ms) |")
    assert (tmp_path / "out" / "duration.csv").read_text().splitlines()[2].startswith("1,1,10.0,")
    summary_rows = (tmp_path / "out" / "duration-summary.csv").read_text().splitlines()
    assert "A peak (ms)" in summary_rows[0].split(",")
    assert main(["features", "dt.json", "--at", "B.t2", "--data", "digits", "--limit", "2", "--out", "f"]) == 0
    assert json.loads((tmp_path / "f" / "features.json").read_text())["ms"] == {"B.t2": 20.0}


def test_a_trained_network_keeps_what_each_paradigm_must_show(tmp_path, images):
    """The same checks on trained weights (a checkpoint, as `probe` is given one), not only on random ones."""
    from cortexgraph.train import TrainConfig, train

    (tmp_path / "every.json").write_text(json.dumps(SPEC))
    train(TrainConfig(spec=str(tmp_path / "every.json"), data="digits", epochs=1, batch_size=32, limit_batches=4,
                      out=str(tmp_path / "run"), progress=False))
    trained = build(str(tmp_path / "run" / "checkpoint.pt")).eval()
    shown_once = {**SPEC, "input": {**SPEC["input"], "stimulus": {"show": {"to": 0}, "then": "blank"}}}
    duration = probe(trained, images, None, experiment("duration"), levels=[1, 2])
    assert duration.response[1] == pytest.approx(states_of(shown_once, trained, images), abs=1e-6)
    assert probe(trained, images, None, experiment("interval"), levels=[0]).response[0] == pytest.approx(
        duration.response[2], abs=1e-9)
    contrast = probe(trained, images, None, experiment("contrast"), levels=[0.0])
    assert all(contrast.evoked(0.0, a, t) == 0 for a, t in contrast.response[0.0])
