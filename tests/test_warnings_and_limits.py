"""Warnings let a spec through; limits stop runaway specs with a message that says how to raise them."""

import pytest

from cortexgraph import Limits, SpecError, analyze, load_spec

BASE = """
cortexgraph: 1
name: w
input: {channels: 4, size: 8}
areas:
  A: {channels: 4, size: 8}
  B: {channels: 4, size: 8}
  C: {channels: 4, size: 8}
inputs: {A: once}
steps: 4
edges:
  - {from: A, to: B, op: conv}
  - {from: B, to: C, op: conv}
EXTRA
readout: {area: C, head: {classes: 2}}
"""


def warnings_of(text):
    return [str(w) for w in analyze(load_spec(text)).warnings]


def warnings(extra):
    return warnings_of(BASE.replace("EXTRA", extra))


def test_clean_spec_has_no_warnings():
    assert warnings("") == []


def test_edge_that_never_fires_within_the_steps():
    (w,) = warnings("  - {from: A, to: A, op: conv, at: {from: 5, to: 9}}")
    assert "edges[2].at: warning: step 5 lies beyond the spec's 4 steps" in w


@pytest.mark.parametrize("at, beyond", [
    ("4", None), ("5", 5), ("[2, 4]", None), ("[3, 5, 6]", 5), ("{from: 4, to: 9}", None), ("{from: 5}", 5),
    ("{from: 1, every: 2}", None),
])
def test_a_step_past_the_last_is_warned_of_and_the_last_is_not(at, beyond):
    """The spec's last step (4) is within it; the first step written past it is named; a range that starts
    within it, or a rule with no end, is not beyond it."""
    found = [w for w in warnings(f"  - {{from: A, to: A, op: conv, at: {at}}}") if "lies beyond" in w]
    assert found == ([] if beyond is None else [
        f"<text>:14:36: edges[2].at: warning: step {beyond} lies beyond the spec's 4 steps (it fires only in "
        "longer runs)"])


def test_edge_that_fires_only_while_its_source_is_silent():
    (w,) = warnings("  - {from: C, to: A, op: conv, at: 1}")
    assert "edge 'C->A' fires only while 'C' is silent (signal reaches it at step 2)" in w


def test_edge_whose_work_never_reaches_the_readout():
    (w,) = warnings("  - {from: C, to: A, op: conv, at: 4}")
    assert "edge 'C->A' feeds nothing that reaches the readout (C at step 4)" in w


def test_warnings_come_with_locations():
    analysis = analyze(load_spec(BASE.replace("EXTRA", "  - {from: C, to: A, op: conv, at: 4}")))
    (w,) = analysis.warnings
    assert w.severity == "warning" and w.path == "edges[2]" and w.line == 14


def test_area_reachable_in_the_graph_but_not_in_time():
    text = BASE.replace("EXTRA", "  - {from: C, to: D, op: conv, at: 2}").replace(
        "  C: {channels: 4, size: 8}", "  C: {channels: 4, size: 8}\n  D: {channels: 4, size: 8}")
    assert any(": areas.D: warning: signal never reaches 'D' within the 4 steps" in w for w in warnings_of(text))


def test_horizon_with_reuse_is_allowed():
    text = BASE.replace("EXTRA", "").replace("steps: 4", "steps: 4\ndefaults: {horizon: 2, beyond: reuse_last}")
    assert analyze(load_spec(text)).warnings == []


def test_limits_stop_big_specs_and_can_be_raised():
    text = BASE.replace("EXTRA", "").replace("steps: 4", "steps: 1500")
    with pytest.raises(SpecError, match="1,500 steps exceed the limit of 1,000"):
        analyze(load_spec(text))
    assert analyze(load_spec(text), Limits(steps=2000)).spec.steps == 1500


def test_channel_and_size_limits():
    text = BASE.replace("EXTRA", "").replace("A: {channels: 4, size: 8}", "A: {channels: 100000, size: 100000}")
    with pytest.raises(SpecError) as caught:
        analyze(load_spec(text))
    messages = [p.message for p in caught.value.errors]
    assert "100,000 channels exceed the limit of 16,384" in messages
    assert "size 100,000 exceeds the limit of 4,096" in messages


def test_unknown_limit_name_is_refused():
    with pytest.raises(ValueError, match="unknown limit 'stepz'"):
        Limits().replace(stepz=3)


def test_a_loop_through_average_pooling_is_linear_and_through_max_pooling_is_not():
    text = """
cortexgraph: 1
name: pooled-loop
input: {channels: 2, size: 8}
areas:
  A: {channels: 2, size: 8}
  B: {channels: 2, size: 4}
inputs: {A: once}
steps: 4
edges:
  - {from: A, to: B, op: POOL}
  - {from: B, to: A, op: up, activation: none, norm: none}
readout: {area: B, head: {classes: 2}}
"""
    (linear,) = [w for w in warnings_of(text.replace("POOL", "avgpool")) if "loop" in w]
    assert "the loop A -> B -> A has no nonlinearity" in linear
    assert not [w for w in warnings_of(text.replace("POOL", "maxpool")) if "loop" in w]
