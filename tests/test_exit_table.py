"""`cortexgraph evaluate`'s rows (`evaluate_exits`) and table (`exit_table`): a sample that runs to the last
step is scored on the full run's prediction (the readout's decoder, where the spec reads out at several
steps), so a threshold no sample reaches early scores what the full run does; and a run that saved nothing
reads 0.0% saved, never -0.0%."""

import pytest
import torch
from torch.utils.data import TensorDataset

from cortexgraph import build
from cortexgraph.evaluate import ExitRow, evaluate_exits, exit_table
from cortexgraph.summary import exit_flops

from .helpers import randomize_norms


def tiny(step, decoder="mean"):
    """Two areas on 8x8 images, read out (both areas) at `step` (an int or a list), 5 classes."""
    return {"cortexgraph": 1, "name": "tiny", "input": {"channels": 1, "size": 8},
            "areas": {"A": {"channels": 4, "size": 8}, "B": {"channels": 6, "size": 4}},
            "inputs": {"A": {"at": "every", "op": "conv"}}, "steps": 4,
            "edges": [{"from": "A", "to": "B", "op": "down"}, {"from": "A", "to": "A", "op": "conv"},
                      {"from": "B", "to": "B", "op": "conv"}],
            "readout": {"area": ["A", "B"], "step": step, "decoder": decoder,
                        "head": {"classes": 5, "norm": "per_step"}}}


def model_and_images(spec, n=48):
    torch.manual_seed(0)
    model = build(spec)
    randomize_norms(model)
    model.eval()
    return model, torch.randn(n, 1, 8, 8) * 3


def last_step_at_odds(model):
    """The head's norms of step 4 (the last readout step) made to read the areas' values with the opposite
    sign, a tenth as strong: the last step's logits then predict otherwise than the decoder of steps 2-4."""
    with torch.no_grad():
        for norm in model.head.norm.values():
            norm.t4.weight.mul_(-0.1)
            norm.t4.bias.mul_(-0.1)


@pytest.mark.parametrize("decoder", ["mean", "weighted", "confident"])
def test_a_sample_that_runs_to_the_last_step_is_scored_on_the_full_run_s_prediction(decoder):
    model, x = model_and_images(tiny([2, 3, 4], decoder))
    last_step_at_odds(model)
    with torch.no_grad():
        full = model(x)
        each = model(x, readout="all")
    # The labels are the full run's predictions: the full row scores 100%. The last step's logits alone
    # predict otherwise (what the table scored such samples on before: 0%).
    y = full.argmax(1)
    assert (each[4].argmax(1) != y).all()
    rows = evaluate_exits(model, TensorDataset(x, y), [1.0], batch_size=20)
    assert [r.threshold for r in rows] == [None, 1.0]
    assert rows[0].accuracy == 1.0 and rows[0].mean_exit_step == 4
    # No sample is that confident before the last step: each runs the whole unroll, and scores as in it.
    assert rows[1].mean_exit_step == 4 and rows[1].accuracy == rows[0].accuracy


def test_a_sample_that_exits_early_is_scored_on_its_exit_step_s_logits():
    model, x = model_and_images(tiny([2, 3, 4]))
    last_step_at_odds(model)
    with torch.no_grad():
        full = model(x)
        each = model(x, readout="all")
        # about half are that confident at a step before the last, and exit there
        threshold = float(torch.stack([each[t].softmax(1).amax(1) for t in each if t < 4]).amax(0).median())
        exits = model(x, exit_threshold=threshold).steps
    assert (exits < 4).any() and (exits == 4).any()
    y = full.argmax(1)
    scored = torch.stack([full[i] if t == 4 else each[t][i] for i, t in enumerate(exits.tolist())])
    rows = evaluate_exits(model, TensorDataset(x, y), [threshold], batch_size=20)
    assert rows[1].accuracy == int((scored.argmax(1) == y).sum()) / len(x)
    assert rows[1].mean_exit_step == pytest.approx(float(exits.double().mean()))


def test_a_run_that_saved_nothing_reads_zero_saved_not_minus_zero():
    # One readout step (area B's, at step 4): a sample that exits there has run the full run and read the
    # head at steps 1-3 too, to check its confidence: a hair more than the full run (0.016%).
    spec = tiny(4)
    spec["areas"]["A"]["channels"] = 16
    spec["readout"] = {"area": "B", "step": 4, "head": {"classes": 5}}
    model, x = model_and_images(spec)
    by_step, whole = exit_flops(model)
    rows = evaluate_exits(model, TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), [1.0])
    assert rows[1].mean_exit_step == 4 and rows[1].flops_per_image == by_step[4] > whole
    assert rows[1].flops_saved == 1 - by_step[4] / whole > -5e-4  # the rows say what it cost, below zero
    table = exit_table(rows)
    assert "-0.0%" not in table and table.splitlines()[2].endswith(" 0.0%")


@pytest.mark.parametrize(("saved", "shown"), [(-1e-4, "0.0%"), (-0.0, "0.0%"), (0.0, "0.0%"), (4e-4, "0.0%"),
                                              (0.0006, "0.1%"), (0.25, "25.0%"), (-0.003, "-0.3%")])
def test_saved_is_rounded_before_it_is_signed(saved, shown):
    rows = [ExitRow(None, 0.5, 4.0, 2e6, 0.0), ExitRow(0.9, 0.5, 3.0, 1.5e6, saved)]
    assert exit_table(rows).splitlines()[2].split()[-1] == shown
