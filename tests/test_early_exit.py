"""Early exit (`model(x, exit_threshold=p)`): each sample's logits are the full run's at its exit step, the
batch shrinks as samples exit and nothing runs once all have; `cortexgraph evaluate` reports accuracy, mean
exit step and FLOPs against the full unroll."""

import json

import pytest
import torch

from cortexgraph import build
from cortexgraph.cli import main
from cortexgraph.summary import exit_flops, summarize
from cortexgraph.train import TrainConfig, train

from .helpers import randomize_norms

TWO_AREAS = {"cortexgraph": 1, "name": "two", "input": {"channels": 1, "size": 8},
             "areas": {"A": {"channels": 4, "size": 8}, "B": {"channels": 6, "size": 4}},
             "inputs": {"A": {"at": "every", "op": "conv"}}, "steps": 4,
             "edges": [{"from": "A", "to": "B", "op": "down"}, {"from": "A", "to": "A", "op": "conv"},
                       {"from": "B", "to": "B", "op": "conv"}],
             "readout": {"area": ["A", "B"], "step": [2, 4], "head": {"classes": 5, "norm": "per_step"}}}
SPECS = {"frnn3-digits": ("demo/frnn3-digits", {}), "gru-stream": ("convrnn/gru-stream", {"size": 8}),
         "two areas": (TWO_AREAS, {})}


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("threshold", [0.21, 0.3, 0.6])
def test_each_sample_gets_the_full_run_s_logits_at_its_exit_step(name, threshold):
    spec, overrides = SPECS[name]
    torch.manual_seed(0)
    model = build(spec, **overrides).double()
    randomize_norms(model)
    model.eval()
    shape = (model.spec.input.channels, *model.spec.input.size)
    x = torch.randn(32, *shape, dtype=torch.float64) * 3
    with torch.no_grad():
        full = model(x, readout="all")
        out = model(x, exit_threshold=threshold)
    first, last = min(full), max(model.spec.readout_steps)
    assert out.logits.shape == full[last].shape and out.steps.dtype == torch.long
    for i, step in enumerate(out.steps.tolist()):
        assert first <= step <= last
        torch.testing.assert_close(out.logits[i], full[step][i], rtol=1e-9, atol=1e-12)
        confident = full[step][i].softmax(0).max() >= threshold
        earlier = [full[t][i].softmax(0).max() >= threshold for t in full if t < step]
        assert not any(earlier) and (confident or step == last)


def test_the_batch_shrinks_as_samples_exit_and_nothing_runs_after_the_last():
    model = build("demo/frnn3-digits").eval()
    seen = []
    for module in model.edges.values():
        module.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    x = torch.randn(64, 1, 16, 16)
    with torch.no_grad():
        full = model(x, readout="all")
        first = min(full)
        threshold = float(full[first].softmax(1).amax(1).median())  # about half exit at the first step
        seen.clear()
        out = model(x, exit_threshold=threshold)
        assert 0 < int((out.steps == first).sum()) < 64
        assert seen[0] == 64 and min(seen) < 64 and seen == sorted(seen, reverse=True)
        seen.clear()
        everyone = model(x, exit_threshold=1e-6)  # all exit at the first step: no call runs after it
    assert (everyone.steps == first).all()
    anytime = model.plan_for(readout="all")
    assert len(seen) == sum(len(u.calls) for u in anytime.updates if u.step <= first)


def test_early_exit_is_for_inference_with_a_probability():
    model = build("demo/frnn3-digits")
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match="early exit is for inference: call model.eval"):
        model(x, exit_threshold=0.5)
    model.eval()
    with pytest.raises(ValueError, match=r"exit_threshold is a probability in \(0, 1\]; got 1.5"):
        model(x, exit_threshold=1.5)
    with pytest.raises(ValueError, match="does not go with readout, return_states or around"):
        model(x, exit_threshold=0.5, readout="all")


def test_exit_flops_count_the_updates_and_heads_up_to_each_step():
    model = build("demo/frnn3-digits")
    by_step, whole = exit_flops(model)
    summary = summarize(model)
    assert whole == summary["flops"]
    assert list(by_step) == [2, 3, 4, 5, 6] and list(by_step.values()) == sorted(by_step.values())
    # Exiting at the last step costs the full run and the four earlier readings of the head.
    assert by_step[6] == whole + 4 * summary["head"]["flops"]


@pytest.mark.parametrize("name", list(SPECS))
def test_exit_flops_are_what_an_image_that_exits_runs(name):
    """The cost accounting against the run itself: FLOPs counted while one image runs to its exit (each of
    the thresholds its steps' confidences give, and a run with no exit) are what `exit_flops` says."""
    from torch.utils.flop_counter import FlopCounterMode

    spec, overrides = SPECS[name]
    torch.manual_seed(0)
    model = build(spec, **overrides).eval()
    by_step, whole = exit_flops(model)
    x = torch.randn(1, model.spec.input.channels, *model.spec.input.size) * 3

    def counted(**call):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(x, **call)
        return out, counter.get_total_flops()

    with torch.no_grad():
        confidence = {t: float(logits.softmax(1).max()) for t, logits in model(x, readout="all").items()}
    exits = set()
    for threshold in sorted({1e-9, 1.0, *confidence.values()}):
        out, flops = counted(exit_threshold=threshold)
        exits.add(int(out.steps[0]))
        assert flops == by_step[int(out.steps[0])], threshold
    assert counted()[1] == whole and min(by_step) in exits


def test_evaluate_reports_the_full_run_and_each_threshold(tmp_path, capsys):
    run = tmp_path / "run"
    result = train(TrainConfig(spec="demo/frnn3-digits", data="digits", out=str(run), epochs=1, batch_size=64,
                               optimizer="adamw", lr=3e-3, progress=False))
    out = tmp_path / "exits.json"
    code = main(["evaluate", str(run / "checkpoint.pt"), "--exit-threshold", "0.5", "0.99", "--json", str(out)])
    assert code == 0
    rows = json.loads(out.read_text())
    assert [r["threshold"] for r in rows] == [None, 0.5, 0.99]
    assert rows[0]["accuracy"] == pytest.approx(result["epochs"][-1]["test_acc"])  # the same split, same model
    assert rows[0]["mean_exit_step"] == 6 and rows[0]["flops_saved"] == 0
    assert rows[1]["mean_exit_step"] <= rows[2]["mean_exit_step"] <= 6
    assert rows[1]["flops_per_image"] <= rows[2]["flops_per_image"]
    printed = capsys.readouterr().out
    assert "frnn3-digits on digits (test split, 360 images)" in printed and "saved" in printed


def test_evaluate_says_what_is_wrong_in_one_line(tmp_path, capsys):
    assert main(["evaluate", "demo/frnn3-digits", "--exit-threshold", "2"]) == 2
    assert capsys.readouterr().err.strip() == "cortexgraph: exit_threshold is a probability in (0, 1]; got 2.0"


def test_a_sample_exits_where_its_confidence_reaches_the_threshold_exactly():
    # Logits of [200, 0, 0, 0, 0] whatever the image: a softmax of exactly 1.0 in float32 at every step, so at
    # threshold 1.0 (the largest allowed) every sample exits at the first step it may: "reaches" is >=.
    model = build(TWO_AREAS).eval()
    with torch.no_grad():
        model.head.fc.weight.zero_()
        model.head.fc.bias.copy_(torch.tensor([200.0, 0, 0, 0, 0]))
    x = torch.randn(3, 1, 8, 8)
    assert bool((model(x, readout="all")[1].softmax(1).amax(1) == 1.0).all())
    first = min(model(x, readout="all"))
    assert model(x, exit_threshold=1.0).steps.tolist() == [first] * 3
    # just below a confidence, it exits; just above, it runs to the last step
    with torch.no_grad():
        model.head.fc.bias.copy_(torch.tensor([2.0, 0, 0, 0, 0]))
    p = float(model(x, readout="all")[first].detach().softmax(1).amax(1)[0])  # e^2 / (e^2 + 4), the same for all
    assert model(x, exit_threshold=p).steps.tolist() == [first] * 3
    assert model(x, exit_threshold=min(1.0, p + 1e-6)).steps.tolist() == [4] * 3
