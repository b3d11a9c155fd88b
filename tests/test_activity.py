"""readout.activity (issue 32): a cost on areas' activity added to the training loss, computed as its
definition says, its gradient reaching the weights, reported per area in the metrics, and checked."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from cortexgraph import build, load_spec
from cortexgraph.errors import SpecError
from cortexgraph.train import TrainConfig, train

SPEC = {"cortexgraph": 1, "name": "costly", "input": {"channels": 1, "size": 8},
        "prenet": [{"conv": {"out": 4}}],
        "areas": {"A": {"channels": 4, "size": 8}, "B": {"channels": 4, "size": 4}},
        "inputs": {"A": "once"}, "steps": 3,
        "transitions": {"A": {"A": "residual", "B": "down"}, "B": {"A": "up", "B": "residual"}},
        "readout": {"area": "B", "head": {"classes": 10}, "activity": {"weight": 0.5, "norm": "l2"}}}


@pytest.mark.parametrize("norm, areas", [("l2", None), ("l1", ["B"])])
def test_the_cost_is_the_weighted_mean_over_areas_and_steps_of_each_value_s_norm(norm, areas):
    spec = json.loads(json.dumps(SPEC))
    spec["readout"]["activity"] = {"weight": 0.5, "norm": norm, **({"areas": areas} if areas else {})}
    torch.manual_seed(0)
    model = build(spec).train()
    x, y = torch.randn(5, 1, 8, 8), torch.arange(5)
    logits, states = model(x, return_states=True)
    cost, by_area = model.activity(states)
    chosen = [v for (a, _), v in states.items() if a in (areas or ["A", "B"])]
    by_hand = 0.5 * torch.stack([(v.abs() if norm == "l1" else v.square()).mean() for v in chosen]).mean()
    assert torch.allclose(cost, by_hand, atol=1e-7) and sorted(by_area) == sorted(areas or ["A", "B"])
    cost.backward()  # the cost alone reaches the weights of what it costs
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert F.cross_entropy(logits, y).requires_grad


def test_training_adds_it_and_reports_it_per_area(tmp_path):
    (tmp_path / "costly.json").write_text(json.dumps(SPEC))
    result = train(TrainConfig(spec=str(tmp_path / "costly.json"), data="digits", epochs=1, batch_size=32,
                               limit_batches=2, out=str(tmp_path / "run"), progress=False))
    epoch = result["epochs"][0]
    assert epoch["activity_cost"] > 0 and sorted(epoch["activity"]) == ["A", "B"]
    assert epoch["train_loss"] > epoch["activity_cost"]  # the loss trained on includes it
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"activity_cost", "activity.A", "activity.B"} <= set(header)


def test_an_unknown_area_is_located():
    spec = json.loads(json.dumps(SPEC))
    spec["readout"]["activity"]["areas"] = ["A", "V9"]
    with pytest.raises(SpecError) as caught:
        build(spec)
    assert "readout.activity.areas[1]: unknown area 'V9'" in str(caught.value)
    spec["readout"]["activity"] = {"weight": 0}
    with pytest.raises(SpecError, match="readout.activity.weight: "):
        load_spec(spec)
