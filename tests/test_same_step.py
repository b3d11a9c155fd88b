"""Zero-delay edges: a sweep inside one step (docs/semantics.md, 'Time').

The values themselves are checked against the oracle (tests/test_oracle.py draws zero-delay edges
down its chains and keeps a BLT-like sweep as an example); here: the order within a step, arrival,
the cycle error, recomputation and the drawings.
"""

from __future__ import annotations

import pytest
import torch

from cortexgraph import build, compile
from cortexgraph.drawing import draw
from cortexgraph.errors import SpecError

SWEEP = """
cortexgraph: 1
name: sweep
input: {channels: 2, size: 8}
areas:
  A: {channels: 3, size: 8}
  B: {channels: 4, size: 4}
  C: {channels: 4, size: 2}
inputs: {A: {at: every, op: conv}}
steps: 3
edges:                                  # listed against the sweep's order on purpose
  - {from: B, to: C, op: down, delay: 0}
  - {from: A, to: B, op: down, delay: 0}
  - {from: C, to: B, op: up}
  - {from: B, to: B, op: conv}
readout: {area: C, step: [0, 1, 2, 3], head: {classes: 3}}
"""


def test_a_sweep_reaches_every_area_at_step_0_in_source_order():
    plan = compile(SWEEP)
    assert plan.arrival == {"A": 0, "B": 0, "C": 0}
    for step, updates in enumerate(plan.schedule):
        assert [u.area for u in updates] == ["A", "B", "C"], step
        by_area = {u.area: {c.edge.name: c.reads for c in u.calls} for u in updates}
        assert by_area["B"]["A->B"] == step and by_area["C"]["B->C"] == step  # this step's values
        if step:
            assert by_area["B"]["C->B"] == step - 1 and by_area["B"]["B->B"] == step - 1


def test_zero_delay_edges_fire_from_step_0_by_default_and_others_from_1():
    edges = compile(SWEEP).edges
    assert edges["A->B"].steps == (0, 1, 2, 3) and edges["C->B"].steps == (1, 2, 3)


def test_a_zero_delay_self_edge_is_a_cycle_named_in_the_error():
    spec = SWEEP.replace("{from: B, to: B, op: conv}", "{from: B, to: B, op: conv, delay: 0}")
    with pytest.raises(SpecError) as caught:
        compile(spec)
    assert str(caught.value).count("\n") == 0
    assert "edges[3].delay: zero-delay edges form a cycle: B -> B (edges 'B->B')" in str(caught.value)


def test_a_longer_zero_delay_cycle_is_named_area_by_area():
    spec = SWEEP.replace("{from: C, to: B, op: up}", "{from: C, to: B, op: up, delay: 0}")
    with pytest.raises(SpecError, match=r"cycle: (B -> C -> B|C -> B -> C) "):
        compile(spec)


def test_recomputation_of_a_sweep_gives_the_same_values_and_gradients():
    torch.manual_seed(0)
    model = build(SWEEP).train()
    x = torch.randn(3, 2, 8, 8)
    plain = model(x, readout="all")
    loss = sum(v.square().sum() for v in plain.values())
    grads = torch.autograd.grad(loss, list(model.parameters()))
    model.checkpoint = True
    again = model(x, readout="all")
    loss2 = sum(v.square().sum() for v in again.values())
    grads2 = torch.autograd.grad(loss2, list(model.parameters()))
    for step in plain:
        torch.testing.assert_close(again[step], plain[step], rtol=1e-6, atol=1e-6)
    for g, g2 in zip(grads, grads2):
        torch.testing.assert_close(g2, g, rtol=1e-5, atol=1e-6)


def test_the_unrolled_drawing_puts_a_same_step_arrow_inside_its_column():
    dot = draw(SWEEP, view="unrolled", collapse=99).source
    assert '"A@0" -> "B@0"' in dot and '"B@0" -> "C@0"' in dot and '"C@0" -> "B@1"' in dot
