"""Users register their own ops from Python and name them in specs."""

import re

import pytest
import torch
from pydantic import PositiveInt
from torch import nn

from cortexgraph import OpContext, Params, SpecError, analyze, build, load_spec, register_op
from cortexgraph.ops.registry import unregister_op

SPEC = """
cortexgraph: 1
name: custom
input: {channels: 3, size: 8}
prenet: [{conv: {out: 4}}]
areas:
  A: {channels: 4, size: 8}
  B: {channels: 4, size: 8}
inputs: {A: once}
steps: 3
edges:
  - {from: A, to: B, op: {gated: {groups: 2}}}
  - {from: B, to: B, op: {gated: {groups: 2}}, tie: A->B}
readout: {area: B, head: {classes: 2}}
"""


class GatedParams(Params):
    groups: PositiveInt = 1


class Gated(nn.Module):
    """A user's op: a grouped conv gated by a sigmoid, with a per-step norm."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        self.conv = nn.Conv2d(ctx.in_channels, ctx.out_channels, 3, padding=1, groups=ctx.params.groups)
        self.gate = nn.Parameter(torch.zeros(1))
        self.norm = ctx.norm(ctx.out_channels)

    def forward(self, x, step):
        return torch.sigmoid(self.gate) * self.norm(self.conv(x), step)


@pytest.fixture
def gated():
    register_op("gated", Gated, params=GatedParams, resample=("same",))
    yield
    unregister_op("gated")


def test_a_registered_op_builds_runs_and_ties(gated):
    model = build(SPEC)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 2)
    tied, owner = model.weight_set("edges.B->B"), model.weight_set("edges.A->B")
    assert tied.conv is owner.conv and tied.norm is not owner.norm
    assert "edges.B->B.conv.weight" not in model.state_dict()


def test_a_registered_op_validates_its_parameters(gated):
    with pytest.raises(SpecError, match=r"edges\[0\]\.op\.gated\.groups: must be > 0"):
        analyze(load_spec(SPEC.replace("{from: A, to: B, op: {gated: {groups: 2}}}",
                                       "{from: A, to: B, op: {gated: {groups: 0}}}")))


def test_a_registered_op_enforces_its_shape_rule(gated):
    text = SPEC.replace("B: {channels: 4, size: 8}", "B: {channels: 4, size: 4}")
    with pytest.raises(SpecError, match="op 'gated' can only keep the size"):
        analyze(load_spec(text))


def test_a_registered_op_checks_its_parameters_against_the_shapes():
    def fits(src, dst, params):  # groups must divide the channels on both sides
        bad = next((c for c in (src[0], dst[0]) if c % params.groups), None)
        return None if bad is None else (f"{params.groups} groups cannot split {bad} channels", "choose groups")

    register_op("gated", Gated, params=GatedParams, resample=("same",), fits=fits)
    try:
        analyze(load_spec(SPEC))  # groups 2 of 2 and 4 channels
        with pytest.raises(SpecError, match=r"edges\[0\]: 3 groups cannot split 4 channels \(choose groups\)"):
            analyze(load_spec(SPEC.replace("{gated: {groups: 2}}", "{gated: {groups: 3}}")))
    finally:
        unregister_op("gated")


def test_an_unregistered_op_is_unknown():
    with pytest.raises(SpecError, match="unknown transition op 'gated'"):
        analyze(load_spec(SPEC))


def test_registering_twice_needs_replace(gated):
    with pytest.raises(ValueError, match="registered already"):
        register_op("gated", Gated)
    register_op("gated", Gated, params=GatedParams, resample=("same",), replace=True)


def test_reserved_and_malformed_names_are_refused():
    for bad in ("op", "My.Op", "2x"):
        with pytest.raises(ValueError, match="op name"):
            register_op(bad, Gated)


class Gain(Params):
    gain: float = 1.0


class WindowParams(Params):
    kernel: tuple[PositiveInt, PositiveInt] = (3, 3)
    extra: Gain | None = None


class Window(nn.Module):
    """A user's op with a tuple parameter and an optional nested one."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        kernel = ctx.params.kernel
        self.conv = nn.Conv2d(ctx.in_channels, ctx.out_channels, kernel, padding=(kernel[0] // 2, kernel[1] // 2))

    def forward(self, x, step):
        return self.conv(x)


@pytest.fixture
def window():
    register_op("window", Window, params=WindowParams, resample=("same",))
    yield
    unregister_op("window")


def _window_spec(op: str) -> str:
    return SPEC.replace("{from: A, to: B, op: {gated: {groups: 2}}}", f"{{from: A, to: B, op: {op}}}").replace(
        "{from: B, to: B, op: {gated: {groups: 2}}, tie: A->B}", "{from: B, to: B, op: conv}")


def test_a_tuple_parameter_is_written_as_a_list(window):
    model = build(_window_spec("{window: {kernel: [3, 5]}}"))
    assert model.weight_set("edges.A->B").conv.kernel_size == (3, 5)


@pytest.mark.parametrize("op, message", [
    ("{window: {kernel: 3}}", r"edges\[0\]\.op\.window\.kernel: expected a list, got the number 3$"),
    ("{window: {kernel: [3, 0]}}", r"edges\[0\]\.op\.window\.kernel\[1\]: must be > 0, got 0$"),
    ("{window: {extra: {gian: 2.0}}}",
     r"edges\[0\]\.op\.window\.extra\.gian: unknown field 'gian' \(did you mean 'gain'\?\)$"),
    ("{window: {extra: {gain: {a: 1}}}}", r"edges\[0\]\.op\.window\.extra\.gain: expected a number, got a mapping$"),
])
def test_a_registered_ops_parameters_are_checked_like_the_specs(window, op, message):
    with pytest.raises(SpecError) as caught:
        analyze(load_spec(_window_spec(op)))
    assert len(caught.value.errors) == 1
    assert re.search(message, str(caught.value.errors[0])), str(caught.value.errors[0])


class Halve(nn.Module):
    """A user's pre-net layer: 2x2 average pooling."""

    def __init__(self, ctx: OpContext):
        super().__init__()

    def forward(self, x):
        return nn.functional.avg_pool2d(x, 2)


def test_a_registered_prenet_layer_says_its_shape():
    register_op("halve", Halve, kind="prenet", infer=lambda shape, params: (shape[0], shape[1] // 2, shape[2] // 2))
    try:
        text = SPEC.replace("prenet: [{conv: {out: 4}}]", "prenet: [{conv: {out: 4}}, halve]").replace(
            "size: 8}", "size: 4}").replace("gated: {groups: 2}", "conv")
        model = build(text.replace("input: {channels: 3, size: 4}", "input: {channels: 3, size: 8}"))
        x = torch.randn(2, 3, 8, 8)
        assert model.prenet(x).shape == (2, 4, 4, 4)
    finally:
        unregister_op("halve", kind="prenet")


def test_a_registered_op_that_keeps_channels_refuses_an_edge_that_changes_them():
    register_op("scale", Window, resample=("same",), keeps_channels=True)
    try:
        text = SPEC.replace("B: {channels: 4, size: 8}", "B: {channels: 6, size: 8}").replace(
            "{gated: {groups: 2}}", "scale").replace(", tie: A->B", "")
        with pytest.raises(SpecError, match="op 'scale' keeps the channels, but 4 -> 6 changes them"):
            analyze(load_spec(text))
    finally:
        unregister_op("scale")


def test_a_big_model_is_made_once_unless_an_op_cannot_reset_its_weights(gated, monkeypatch):
    import cortexgraph.model as model_module

    made = []
    real = model_module.CortexNet.__init__
    monkeypatch.setattr(model_module.CortexNet, "__init__", lambda self, plan: (made.append(1), real(self, plan))[1])
    build("torchvision/resnet18", size=32)
    assert len(made) == 1  # on the meta device, then given memory and initialised in place
    made.clear()
    big = SPEC.replace("channels: 4", "channels: 512").replace("out: 4", "out: 512").replace("groups: 2", "groups: 1")
    model = build(big)  # 2.4 million weights, but Gated has a parameter and no reset_parameters: made for real
    assert len(made) == 2 and model.weight_set("edges.A->B").gate.item() == 0.0


def test_an_op_registered_as_linear_makes_a_loop_through_it_linear():
    """`linear=True` is the registry's word that an op applies no activation, as for identity and avgpool; the
    analysis reads it from the op's definition, never from its name."""
    loop = SPEC.replace("op: {gated: {groups: 2}}, tie: A->B", "op: scaled").replace(
        "op: {gated: {groups: 2}}", "op: conv")
    try:
        register_op("scaled", Gated, linear=True)
        assert [w.message for w in analyze(load_spec(loop)).warnings] == [
            "the loop B -> B has no nonlinearity (its edges are linear and its areas' cells add none), so its values "
            "decay or grow geometrically with the steps"]
        register_op("scaled", Gated, replace=True)
        assert analyze(load_spec(loop)).warnings == []
    finally:
        unregister_op("scaled")


def test_unregistering_a_name_never_registered_is_harmless():
    unregister_op("never_registered_here")
    unregister_op("never_registered_here", kind="prenet")
