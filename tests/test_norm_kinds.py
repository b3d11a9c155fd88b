"""Norm kinds (batch, group, layer, instance; per step or shared) for the pre-net, edges, cells and the head, and pools
with a kernel and padding (alone, or after a conv), against torch.nn.functional with the model's weights
read by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cortexgraph import SpecError, build, compile, load_spec

STEPS = 2


def _spec(norm: str, op: str = "conv", channels: int = 4) -> str:
    return f"""
cortexgraph: 1
name: norms
input: {{channels: 2, size: 4}}
prenet: [{{conv: {{out: 4, norm: {norm}}}}}]
areas:
  A: {{channels: {channels}, size: 4, cell: {{act: {{norm: {norm}}}}}}}
inputs: {{A: {{at: every, op: {op}}}}}
steps: {STEPS}
defaults: {{norm: {norm}}}
readout: {{area: A, head: {{classes: 3, norm: {norm}}}}}
"""


KINDS = ["per_step", "shared", "{kind: group, groups: 2}", "{kind: group, groups: 4, time: shared}", "layer",
         "{kind: layer, time: shared, eps: 0.001}", "instance", "{kind: instance, time: shared}"]


def _norm(w: dict, prefix: str, x: torch.Tensor, kind: str, training: bool) -> torch.Tensor:
    weight, bias = w[f"{prefix}.weight"], w[f"{prefix}.bias"]
    if "group" in kind:
        return F.group_norm(x, int(kind.split("groups: ")[1][0]), weight, bias, 1e-5)
    if "layer" in kind:
        return F.layer_norm(x, list(x.shape[1:]), weight, bias, 1e-3 if "0.001" in kind else 1e-5)
    if "instance" in kind:
        return F.instance_norm(x, weight=weight, bias=bias, eps=1e-5)
    return F.batch_norm(x, w[f"{prefix}.running_mean"].clone(), w[f"{prefix}.running_var"].clone(), weight, bias,
                        training=training, eps=1e-5)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_norm_kind_normalises_the_prenet_edges_cells_and_the_head(kind, training):
    torch.manual_seed(0)
    model = build(_spec(kind)).double().train(training)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5) if name.endswith("weight") else p.uniform_(-0.5, 0.5)
    w = dict(model.state_dict())
    per_step = "shared" not in kind
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    got = model(x, readout="all")
    stem = F.relu(_norm(w, "prenet.0.norm", F.conv2d(x, w["prenet.0.conv.weight"], padding=1), kind, training))
    for t in range(STEPS + 1):
        at = f".t{t}" if per_step and STEPS else ""
        drive = F.relu(_norm(w, f"edges.input->A.norm{at}", F.conv2d(stem, w["edges.input->A.conv.weight"],
                                                                     padding=1), kind, training))
        a = F.relu(_norm(w, f"cells.A.norm{at}", drive, kind, training))
        head_at = ""  # one readout step: one head norm
        pooled = F.relu(_norm(w, f"head.norm{head_at}", a, kind, training)).mean((2, 3))
        want = F.linear(pooled, w["head.fc.weight"], w["head.fc.bias"])
        torch.testing.assert_close(got[t], want, rtol=1e-9, atol=1e-10, msg=f"step {t}")


@pytest.mark.parametrize("kind", KINDS)
def test_sizes_of_every_norm_kind_are_known_before_building(kind):
    plan = compile(_spec(kind))
    model = build(_spec(kind))
    assert plan.size.parameters == sum(p.numel() for p in model.parameters())
    assert plan.size.statistics == sum(b.numel() for n, b in model.named_buffers() if "running" in n)


def test_a_norm_is_written_back_as_it_was_read():
    spec = load_spec(_spec("{kind: group, groups: 2, time: shared}"))
    assert spec.to_dict()["defaults"]["norm"] == {"kind": "group", "groups": 2, "time": "shared"}
    assert load_spec(spec.to_dict()) == spec
    assert load_spec(_spec("shared")).to_dict()["defaults"]["norm"] == "shared"


def test_a_group_norm_must_split_the_channels():
    with pytest.raises(SpecError) as caught:
        compile(_spec("{kind: group, groups: 3}"))
    messages = [str(p) for p in caught.value.errors]
    assert any("inputs.A: a group norm of 3 groups cannot split 4 channels" in m for m in messages)
    assert any("areas.A.cell: a group norm of 3 groups cannot split 4 channels" in m for m in messages)
    assert any("readout.head.norm: a group norm of 3 groups cannot split 4 channels" in m for m in messages)


def test_a_layer_norm_does_not_fit_ops_with_norms_at_several_sizes():
    with pytest.raises(SpecError, match="inputs.A: op 'basic' has norms inside it at more than one size"):
        compile(_spec("layer", op="basic", channels=2))


# --- pooling with a kernel and padding, alone or after a conv (CORnet-Z) ----------------------------------

POOLS = """
cortexgraph: 1
name: pools
input: {channels: 2, size: 8}
areas:
  A: {channels: 2, size: 8}
  B: {channels: 2, size: 4}
  C: {channels: 3, size: 2}
inputs: {A: once}
steps: 1
edges:
  - {from: A, to: B, op: OP, delay: 0}
  - {from: B, to: C, op: {conv: {bias: true, pool: {kernel: 3, stride: 2, padding: 1}}}, delay: 0, norm: none}
readout: {area: C, step: 0, head: {classes: 3}}
"""


@pytest.mark.parametrize("op, pool", [
    ("{maxpool: {kernel: 3, padding: 1}}", lambda x: F.max_pool2d(x, 3, 2, 1)),
    ("{avgpool: {kernel: 4, padding: 1}}", lambda x: F.avg_pool2d(x, 4, 2, 1)),
    ("{pool: {kind: avg}}", lambda x: F.avg_pool2d(x, 2, 2)),
    ("pool", lambda x: F.max_pool2d(x, 2, 2)),
])
def test_pools_take_a_kernel_and_padding_and_a_conv_may_pool_after_itself(op, pool):
    torch.manual_seed(0)
    model = build(POOLS.replace("OP", op)).double().eval()
    w = model.state_dict()
    x = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    _, states = model(x, return_states=True)
    b = pool(x)
    torch.testing.assert_close(states[("B", 0)], b, rtol=1e-12, atol=1e-12)
    c = F.max_pool2d(F.relu(F.conv2d(b, w["edges.B->C.conv.weight"], w["edges.B->C.conv.bias"], padding=1)), 3, 2, 1)
    torch.testing.assert_close(states[("C", 0)], c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op, message", [
    ("{maxpool: {kernel: 5}}", "edges[0]: pooling 8x8 with kernel 5, stride 2 (the size ratio) and padding 0 gives "
                               "2x2, not 4x4 (adjust the kernel or the padding)"),
    ("{maxpool: {kernel: 2, padding: 2}}", "edges[0]: padding 2 is more than half the kernel (2) (pad at most "
                                           "kernel // 2)"),
    ("{down: {pool: {stride: 4}}}", "edges[0]: the pools' stride 4 does not divide the size ratio 2 (8x8 -> 4x4) "
                                    "(the conv strides by the ratio over the pools' strides)"),
    ("{down: {pool: {kernel: 5}}}", "edges[0]: the pools and a conv of stride 1 give 2x2, not 4x4 (adjust the "
                                    "pools' kernel, stride or padding)"),
    ("{down: {pool_input: {kernel: 2}, pool: {kernel: 2}}}", "edges[0]: the pools' stride 4 does not divide the "
                                                             "size ratio 2"),
])
def test_a_pool_that_does_not_give_the_target_size_is_refused(op, message):
    with pytest.raises(SpecError) as caught:
        compile(POOLS.replace("OP", op))
    assert message in str(caught.value)


@pytest.mark.parametrize("norm, message", [
    ("{kind: group, group: 2}", "norm: unknown field 'group'; a norm has kind, time, groups, eps and momentum"),
    ("{kind: group, groups: 0}", "norm groups: input should be greater than 0"),
    ("{kind: batch, time: always}", "norm time: 'always' is not allowed; expected 'per_step' or 'shared'"),
    ("{kind: group, groups: 2, momentum: 0.01}", "norm: a group norm keeps no running statistics: momentum "
                                                 "applies to batch norms"),
    ("{kind: batch, momentum: 0}", "norm momentum: input should be greater than 0"),
])
def test_a_norm_mapping_that_is_not_one_is_one_message(norm, message):
    with pytest.raises(SpecError) as caught:
        compile(_spec(norm))
    assert message in str(caught.value)


def test_a_batch_norm_s_momentum_and_eps_are_its_own():
    # Keras's BatchNormalization (momentum 0.99, eps 1e-3) as published TensorFlow models use it.
    norm = "{kind: batch, eps: 0.001, momentum: 0.01}"
    model = build(_spec(norm)).double().train()
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    model(x)
    stem = F.conv2d(x, model.state_dict()["prenet.0.conv.weight"], padding=1)
    norm_layer = model.prenet[0].norm
    assert (norm_layer.eps, norm_layer.momentum) == (1e-3, 0.01)
    torch.testing.assert_close(norm_layer.running_mean, 0.01 * stem.mean((0, 2, 3)), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(norm_layer.running_var, 0.99 + 0.01 * stem.var((0, 2, 3)), rtol=1e-12, atol=1e-14)
    assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.01}


@pytest.mark.parametrize("norm, message", [
    ("{kind: group, groups: 3}", "prenet[0].conv.norm: a group norm of 3 groups cannot split 4 channels"),
    ("{kind: layer, momentum: 0.5}", "a layer norm keeps no running statistics: momentum applies to batch norms"),
])
def test_a_prenet_norm_that_cannot_be_is_located(norm, message):
    with pytest.raises(SpecError) as caught:
        compile(_spec("none").replace("norm: none}}]", f"norm: {norm}}}}}]"))
    assert message in str(caught.value)
