"""Edge list, transition matrix and schedule of matrices lower to the same edges and build the same model."""

import pytest
import torch
import yaml

from cortexgraph import analyze, build, load_spec
from tests.oracle import Oracle

HEAD = """
cortexgraph: 1
name: three-ways
input: {channels: 3, size: 32}
prenet: [{conv: {out: 8}}]
areas:
  V1: {channels: 8, size: 32}
  V2: {channels: 16, size: 16}
  IT: {channels: 32, size: 8}
inputs: {V1: once}
steps: 6
readout: {area: IT, head: {classes: 10}}
"""

EDGE_LIST = HEAD + """
edges:
  - {from: V1, to: V1, op: residual}
  - {from: V1, to: V2, op: down}
  - {from: V2, to: V1, op: {up: {mode: bilinear}}, delay: 2}
  - {from: V2, to: V2, op: residual, share: none}
  - {from: V2, to: IT, op: down, norm: shared}
  - {from: IT, to: IT, op: residual}
"""

MATRIX = HEAD + """
transitions:
  V1: {V1: residual, V2: down}
  V2: {V1: {op: {up: {mode: bilinear}}, delay: 2}, V2: {op: residual, share: none}, IT: {op: down, norm: shared}}
  IT: {IT: residual}
"""

SCHEDULE = HEAD + """
schedule:
  - at: {to: 2}
    transitions:
      V1: {V1: residual, V2: down}
      V2: {V1: {op: {up: {mode: bilinear}}, delay: 2}, V2: {op: residual, share: none}, IT: {op: down, norm: shared}}
      IT: {IT: residual}
  - at: {from: 3}
    transitions:
      IT: {IT: residual}
      V2: {IT: {op: down, norm: shared}, V2: {op: residual, share: none}, V1: {op: {up: {mode: bilinear}}, delay: 2}}
      V1: {V2: down, V1: residual}
"""


def edges_of(text):
    return sorted(analyze(load_spec(text)).edges, key=lambda e: e.name)


def test_three_notations_give_equal_graphs():
    edge_list, matrix, schedule = edges_of(EDGE_LIST), edges_of(MATRIX), edges_of(SCHEDULE)
    assert edge_list == matrix == schedule
    assert len(edge_list) == 7  # six transitions and the input


@pytest.mark.parametrize("text", [EDGE_LIST, MATRIX, SCHEDULE], ids=["edges", "matrix", "schedule"])
def test_every_notation_builds_the_model_the_oracle_reads_in_the_edge_list(text):
    oracle = Oracle(yaml.safe_load(EDGE_LIST))
    model = build(text).double()
    model.load_state_dict(oracle.state_dict())  # the same names, whichever notation wrote the edges
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    model.train()
    torch.testing.assert_close(model(x, readout="all"), oracle.run(x, readout="all", training=True))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x, steps=4), oracle.run(x, steps=4))
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, oracle.tensors[name], msg=name)


def test_notations_differing_in_one_setting_are_not_equal():
    other = MATRIX.replace("delay: 2", "delay: 3")
    assert edges_of(other) != edges_of(EDGE_LIST)


def test_resnet18_as_edge_list_equals_resnet18_as_schedule():
    spec = load_spec("torchvision/resnet18").to_dict()
    schedule = []
    for edge in spec.pop("edges"):
        at = edge["at"]
        schedule.append({"at": at, "transitions": {edge["from"]: {edge["to"]: edge["op"]}}})
    spec["schedule"] = schedule
    as_schedule = sorted(analyze(load_spec(spec)).edges, key=lambda e: e.name)
    assert as_schedule == sorted(analyze(load_spec("torchvision/resnet18")).edges, key=lambda e: e.name)


def test_mixed_notations_combine():
    text = MATRIX.replace("  IT: {IT: residual}\n", "") + "edges:\n  - {from: IT, to: IT, op: residual}\n"
    assert edges_of(text) == edges_of(EDGE_LIST)


def test_a_transition_in_several_phases_fires_at_their_steps_only():
    text = HEAD + """
schedule:
  - at: 1
    transitions: {V1: {V2: down}}
  - at: [3, 5]
    transitions: {V1: {V2: down}}
  - at: 6
    transitions: {V2: {IT: down}}
"""
    steps = {e.name: e.steps for e in analyze(load_spec(text)).edges}
    assert steps["V1->V2"] == (1, 3, 5) and steps["V2->IT"] == (6,)


@pytest.mark.parametrize("short, long", [
    ("{V1: once}", "{V1: {at: once}}"), ("{V1: [0, 2]}", "{V1: {at: [0, 2]}}"),
    ("{V1: every}", "{V1: {at: every, op: identity}}"), ("{V1: once}", "{V1: {op: identity}}"),
])
def test_an_input_rule_written_short_or_long_is_one_rule(short, long):
    written = [load_spec(HEAD.replace("inputs: {V1: once}", f"inputs: {form}") + EDGE_LIST[len(HEAD):])
               for form in (short, long)]
    assert written[0].inputs == written[1].inputs
    assert edges_of(HEAD.replace("inputs: {V1: once}", f"inputs: {short}") + EDGE_LIST[len(HEAD):]) == edges_of(
        HEAD.replace("inputs: {V1: once}", f"inputs: {long}") + EDGE_LIST[len(HEAD):])
