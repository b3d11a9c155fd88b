"""The post-net's norm (a pre-activation network's final BN-ReLU, one per readout step) and residual init."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cortexgraph import SpecError, build, register_op
from cortexgraph.ops.layers import Identity
from cortexgraph.ops.registry import unregister_op

from .helpers import randomize_norms

SPEC = """
cortexgraph: 1
name: head
input: {channels: 3, size: 8}
prenet: [{conv: {out: 4}}]
areas: {S: {channels: 4, size: 8}}
inputs: {S: once}
steps: 4
transitions: {S: {S: OP}}
readout: {area: S, READOUT head: {classes: 3, HEAD}}
"""


def head_spec(op="residual", head="", readout=""):
    return build(SPEC.replace("OP", op).replace("HEAD", head).replace("READOUT", readout))


def test_a_readout_area_written_by_pre_activation_ops_is_normalised_and_activated_first():
    model = head_spec("residual")
    assert model.plan.head_norm.policy == "per_step"
    assert {"head.norm.weight", "head.norm.running_mean"} <= set(model.state_dict())  # one readout step


@pytest.mark.parametrize("op", ["basic", "conv", "bottleneck"])
def test_other_ops_end_in_their_own_norm_and_get_no_head_norm(op):
    model = head_spec(op)
    assert model.plan.head_norm.policy == "none"
    assert not [n for n in model.state_dict() if n.startswith("head.norm")]


def test_a_spec_chooses_its_head_norm():
    assert head_spec("residual", head="norm: none").plan.head_norm.policy == "none"
    shared = head_spec("basic", head="norm: shared", readout="step: [2, 4],")
    assert [n for n in shared.state_dict() if n.startswith("head.norm") and n.endswith("weight")] == \
        ["head.norm.weight"]
    with pytest.raises(SpecError, match=r"readout\.head\.norm: .batchnorm. is not a norm; expected per_step"):
        head_spec("residual", head="norm: batchnorm")
    layer = head_spec("basic", head="norm: {kind: layer, time: shared}")
    assert layer.state_dict()["head.norm.weight"].shape == (4, 8, 8)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_each_readout_step_has_its_norm_and_other_steps_use_the_next_ones(train):
    torch.manual_seed(0)
    model = head_spec("residual", readout="step: [2, 3],")
    randomize_norms(model)
    model.train(train)
    names = {n for n in model.state_dict() if n.startswith("head.norm") and n.endswith("weight")}
    assert names == {"head.norm.t2.weight", "head.norm.t3.weight"}
    x = torch.randn(6, 3, 8, 8)
    anytime, states = model(x, readout="all", return_states=True)
    head = model.head

    def logits(step, norm):
        h = F.relu(head.norm._modules[f"t{norm}"](states[("S", step)]))
        return head.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    # Steps 0 and 1 use step 2's norm (the next readout step's); step 4, past them all, the last one's.
    for step, norm in {0: 2, 1: 2, 2: 2, 3: 3, 4: 3}.items():
        torch.testing.assert_close(anytime[step], logits(step, norm), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(x), (logits(2, 2) + logits(3, 3)) / 2, rtol=1e-5, atol=1e-5)


def test_ops_registered_as_pre_activation_get_the_head_norm_too():
    register_op("bare", Identity, resample=("same",), keeps_channels=True, preactivation=True)
    try:
        assert head_spec("bare").plan.head_norm.policy == "per_step"
    finally:
        unregister_op("bare")


def test_the_head_norm_is_drawn_and_counted():
    from cortexgraph import draw
    from cortexgraph.summary import summarize

    model = head_spec("residual")
    assert "norm per step, act, avg pool, linear" in draw(model).source
    assert summarize(model)["head"]["params"] == 4 * 2 + 4 * 3 + 3  # norm scale and shift, fc


@pytest.mark.parametrize("op,norm", [("basic", "bn2"), ("bottleneck", "bn3")])
def test_post_activation_residual_ops_start_as_their_shortcut(op, norm):
    model = head_spec(op)
    block = model.weight_set("edges.S->S")
    scales = [m.weight for m in getattr(block, norm).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(scales) == 4 and all(bool((s == 0).all()) for s in scales)
    with torch.no_grad():  # so each step is the identity, after its ReLU
        h = model.prenet(torch.randn(2, 3, 8, 8))
        torch.testing.assert_close(block(F.relu(h), 1), F.relu(h))
    unchanged = build(SPEC.replace("OP", op).replace("HEAD", "").replace("READOUT", "").replace(
        "steps: 4", "steps: 4\ndefaults: {zero_init_residual: false}"))
    block = unchanged.weight_set("edges.S->S")
    assert all(bool((m.weight == 1).all()) for m in getattr(block, norm).modules() if isinstance(m, nn.BatchNorm2d))
