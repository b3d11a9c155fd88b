"""Users register their own ops from Python and name them in specs."""

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
    tied, owner = model.group("edges.B->B"), model.group("edges.A->B")
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
