"""A readout that reads several areas: each normalised (where the head has a norm) and pooled, then
concatenated in the listed order for one linear layer. Values against the hand-written head below; the
oracle's random specs (tests/test_oracle.py) read several areas too."""

import pytest
import torch
import torch.nn.functional as F

from cortexgraph import SpecError, build, compile
from cortexgraph.diagnose import first_nonfinite_gradient, first_nonfinite_value
from cortexgraph.drawing import draw
from cortexgraph.summary import summarize

from .helpers import randomize_norms


def spec(area=("A", "B"), step=(2, 3), head=None):
    return {"cortexgraph": 1, "name": "two", "input": {"channels": 1, "size": 8},
            "areas": {"A": {"channels": 4, "size": 8}, "B": {"channels": 6, "size": 4},
                      "C": {"channels": 6, "size": 4}},
            "inputs": {"A": {"at": "every", "op": "conv"}}, "steps": 3,
            "edges": [{"from": "A", "to": "B", "op": "down"}, {"from": "A", "to": "A", "op": "conv"},
                      {"from": "B", "to": "C", "op": "conv"}],
            "readout": {"area": list(area) if isinstance(area, tuple) else area,
                        "step": list(step) if isinstance(step, tuple) else step,
                        "head": head or {"classes": 3, "norm": "per_step"}}}


@pytest.mark.parametrize("pool", ["avg", "max", "none"])
@pytest.mark.parametrize("train", [False, True])
def test_each_area_is_normalised_and_pooled_then_concatenated(pool, train):
    torch.manual_seed(0)
    model = build(spec(head={"classes": 3, "norm": "per_step", "pool": pool})).double().train(train)
    randomize_norms(model)
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    logits, states = model(x, readout="all", return_states=True)
    assert list(logits) == [1, 2, 3]  # B first holds a value at step 1
    head = model.head
    for step, got in logits.items():
        norm_step = 2 if step <= 2 else 3
        features = []
        for area in ("A", "B"):
            norm = getattr(head.norm[area], f"t{norm_step}")
            v = F.relu(F.batch_norm(states[(area, step)], norm.running_mean.clone(), norm.running_var.clone(),
                                    norm.weight, norm.bias, training=train, eps=norm.eps))
            v = {"avg": v.mean((2, 3)), "max": v.amax((2, 3)), "none": v}[pool]
            features.append(v.flatten(1))
        want = F.linear(torch.cat(features, 1), head.fc.weight, head.fc.bias)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_the_head_s_parameters_are_named_by_area_and_counted():
    model = build(spec())
    names = {n for n, _ in model.head.named_parameters()}
    assert names == {"norm.A.t2.weight", "norm.A.t2.bias", "norm.A.t3.weight", "norm.A.t3.bias",
                     "norm.B.t2.weight", "norm.B.t2.bias", "norm.B.t3.weight", "norm.B.t3.bias",
                     "fc.weight", "fc.bias"}
    assert model.head.fc.in_features == 4 + 6
    assert model.plan.parts["head"].parameters == sum(p.numel() for p in model.head.parameters())
    assert model.plan.size.parameters == sum(p.numel() for p in model.parameters())
    assert summarize(model)["readout"] == {"area": ["A", "B"], "steps": [2, 3]}


def test_only_what_the_readout_areas_need_runs():
    plan = compile(spec(area=("A", "C"), step=3))
    assert plan.readout_areas == ("A", "C")
    # C at 3 reads B at 2, which reads A at 1; A->B at steps 1 and 3 feed nothing read.
    assert [(u.area, u.step) for u in plan.updates if u.area != "A"] == [("B", 2), ("C", 3)]
    assert "readout A+C at 3" in str(plan)


def test_the_anytime_readout_starts_once_every_area_holds_a_value():
    model = build(spec(area=("A", "C"), step=3))
    assert list(model(torch.randn(2, 1, 8, 8), readout="all")) == [2, 3]


def test_drawings_link_every_readout_area_to_the_head():
    model = build(spec())
    rolled = draw(model).source
    assert "area_A -> head" in rolled and "area_B -> head" in rolled and "readout A+B at step 2-3" in rolled
    unrolled = draw(model, view="unrolled").source
    assert unrolled.count("-> head") == 4  # two areas at two readout steps


def test_the_diagnosis_reads_through_a_head_of_several_areas():
    model = build(spec())
    x = torch.randn(2, 1, 8, 8)
    assert first_nonfinite_gradient(model, x, lambda out: out.sum()) is None
    with torch.no_grad():
        model.head.norm["B"].t3.weight[0] = float("nan")
    assert first_nonfinite_value(model, x).what == "head"


@pytest.mark.parametrize("area, step, message", [
    (("A", "D"), 3, "readout.area[1]: unknown area 'D' (known: A, B, C)"),
    (("A", "B"), 0, "readout.step: 'B' is read out at step 0, but signal first reaches it at step 1"),
    (("A", "C"), None, "readout.area[1]: 'C' is read out at step 1, but signal never reaches it"),
    (("A", "A"), 3, "readout.area: list each readout area once"),
    ((), 3, "readout.area: list at least one readout area"),
])
def test_bad_readout_areas_are_located(area, step, message):
    doc = spec(area=area, step=step)
    if step is None:
        doc["readout"].pop("step")
        doc["steps"] = 1
    with pytest.raises(SpecError) as caught:
        compile(doc)
    assert message in str(caught.value)


def test_the_diagnosis_runs_the_whole_plan_so_it_finds_trouble_in_areas_not_read_out():
    """C is read by no readout (pruned from `model(x)`); a non-finite weight into it is still found."""
    model = build(spec()).eval()
    with torch.no_grad():
        model.weight_set("edges.B->C").conv.weight[0, 0, 0, 0] = float("nan")
    x = torch.randn(2, 1, 8, 8)
    assert torch.isfinite(model(x)).all()
    place = first_nonfinite_value(model, x)
    assert (place.what, place.step, place.area, place.edge) == ("edge", 2, "C", "B->C")
