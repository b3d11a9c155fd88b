"""Error paths no other test reached, each with its message: limits, call forms, checkpoints, weight maps."""

import copy
import json

import pytest
import torch

from cortexgraph import Limits, SpecError, analyze, build, load_spec, register_op
from cortexgraph.checkpoint import FORMAT, CheckpointError, read_checkpoint, save_checkpoint
from cortexgraph.interop import WeightMapError
from cortexgraph.interop.mapping import load_mapped, norm_name
from cortexgraph.overrides import override

SPEC = {"cortexgraph": 1, "name": "small", "input": {"channels": 2, "size": 4},
        "areas": {"A": {"channels": 2, "size": 4}}, "inputs": {"A": "once"}, "steps": 3,
        "edges": [{"from": "A", "to": "A", "op": "conv"}], "readout": {"area": "A", "head": {"classes": 2}}}


def test_too_many_firings_are_refused_before_the_graph_is_unrolled():
    with pytest.raises(SpecError, match="steps: the unrolled graph has more than 2 edge firings"):
        analyze(load_spec(SPEC), Limits(firings=2))


def test_limits_name_the_field_and_allow_what_is_at_them():
    analyze(load_spec(SPEC), Limits(size=4, channels=2))  # at the limits: allowed
    spec = SPEC | {"prenet": [{"conv": {"out": 2}}, {"conv": {"out": 2}}]}
    with pytest.raises(SpecError) as caught:
        analyze(load_spec(spec), Limits(size=3, prenet=1))
    assert [(p.path, p.message) for p in caught.value.errors] == [
        ("prenet", "2 prenet exceed the limit of 1"), ("input.size", "size 4 exceeds the limit of 3"),
        ("areas.A.size", "size 4 exceeds the limit of 3")]


def test_a_flattening_head_on_a_wide_area_counts_what_it_holds():
    spec = _changed(lambda s: (s["areas"]["A"].update(size=[4, 2]), s["input"].update(size=[4, 2]),
                               s["readout"]["head"].update(pool="none")))
    model = build(spec)
    assert model(torch.randn(2, 2, 4, 2)).shape == (2, 2)
    assert model.plan.size.parameters == sum(p.numel() for p in model.parameters())


def test_a_prenet_wider_than_the_channel_limit_is_named():
    spec = SPEC | {"prenet": [{"conv": {"out": 64}}], "input": {"channels": 1, "size": 4}}
    with pytest.raises(SpecError, match=r"prenet\[0\]: 64 channels exceed the limit of 8"):
        analyze(load_spec(spec), Limits(channels=8))


def test_an_edge_whose_rule_selects_no_step_is_a_warning():
    spec = SPEC | {"edges": SPEC["edges"] + [{"from": "A", "to": "A", "name": "never", "op": "conv",
                                              "at": {"to": 0}}]}
    warnings = [p.message for p in analyze(load_spec(spec)).warnings]
    assert "edge 'never' never fires within the 3 steps" in warnings


def test_call_forms_that_do_not_exist_are_refused():
    model = build(SPEC)
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="readout is None .* or 'all' .*; got 'last'"):
        model(x, readout="last")
    with pytest.raises(ValueError, match="steps must be >= 0, got -1"):
        model(x, steps=-1)


def test_a_checkpoints_model_takes_no_overrides(tmp_path):
    model = build(SPEC)
    path = tmp_path / "model.pt"
    save_checkpoint(path, spec=model.spec.to_dict(), model=model.state_dict())
    assert build(str(path)).spec.name == "small"
    with pytest.raises(ValueError, match="a checkpoint's model is built as it was trained: overrides do not apply"):
        build(str(path), steps=5)


def test_missing_and_newer_checkpoints_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="gone.pt: no such file"):
        read_checkpoint(tmp_path / "gone.pt")
    torch.save({"format": FORMAT, "version": 99, "spec": {}, "model": {}}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="is checkpoint format version 99; this cortexgraph reads version 1"):
        read_checkpoint(tmp_path / "future.pt")


def test_a_weight_map_onto_a_name_the_model_lacks_is_named():
    model = build(SPEC)
    state = {"theirs.weight": torch.zeros(1)}
    with pytest.raises(WeightMapError, match="src's 'theirs.weight' maps to 'edges.nowhere.weight', which small "
                                             "does not have"):
        load_mapped(model, state, {"theirs.weight": "edges.nowhere.weight"}, "src")


def test_a_norm_name_is_stepped_only_where_the_model_steps_it():
    ours = {"edges.e.norm.weight": 0, "edges.f.norm.t3.weight": 0}
    assert norm_name(ours, "edges.e.norm.weight", 3) == "edges.e.norm.weight"
    assert norm_name(ours, "edges.f.norm.weight", 3) == "edges.f.norm.t3.weight"
    # In neither form: the name the map asked for, so the error names what the user can look up.
    assert norm_name(ours, "edges.g.norm.weight", 3) == "edges.g.norm.weight"


def test_a_prenet_op_must_say_its_output_shape():
    with pytest.raises(ValueError, match=r"a pre-net op needs infer\(shape, params\) -> shape"):
        register_op("shapeless", torch.nn.Identity, kind="prenet")


def _changed(change):
    spec = copy.deepcopy(SPEC)
    change(spec)
    return spec


@pytest.mark.parametrize("change, message", [
    (lambda s: s["areas"].update({3: {"channels": 2, "size": 4}}),
     r"areas\[3\]: an area name is text, not the number 3"),
    (lambda s: s["edges"][0].update(name=5), r"edges\[0\].name: an edge name is text, not the number 5"),
    (lambda s: s["areas"]["A"].update(size=0), "areas.A.size: a size must be at least 1, got 0$"),
    (lambda s: s["areas"]["A"].update(size=[4, 0]), r"areas.A.size: a size must be at least 1, got \[4, 0\]"),
    (lambda s: s["readout"].update(step=[3, 2]), "readout.step: list the readout steps in increasing order, each once"),
    (lambda s: s["readout"].update(step=[2, 2, 4]),
     "readout.step: list the readout steps in increasing order, each once"),  # a step read out twice
    (lambda s: s["readout"].update(step="late"), "readout.step: expected a step .* or a list of steps; got the text"),
    (lambda s: s["edges"][0].update(op={5: {}}), r"edges\[0\].op: an op name is text, not the number 5"),
    (lambda s: s["edges"][0].update(op={"conv": 3}), "the parameters of op 'conv' are a mapping such as {kernel: 3}"),
    (lambda s: s["readout"]["head"].update(dropout="much"), "dropout: expected a number, got the text 'much'"),
    (lambda s: s.update(checkpoint="maybe"), "checkpoint: expected true or false, got the text 'maybe'"),
    (lambda s: s.update(areas={}), "areas: must not be empty"),
])
def test_spec_values_of_the_wrong_kind_are_one_line(change, message):
    with pytest.raises(SpecError, match=message) as caught:
        load_spec(_changed(change))
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize("change, where", [
    (lambda s: s.update(stpes=s.pop("steps")), "stpes: unknown field 'stpes' (did you mean 'steps'?)"),
    (lambda s: s["areas"]["A"].update(chanels=s["areas"]["A"].pop("channels")),
     "areas.A.chanels: unknown field 'chanels' (did you mean 'channels'?)"),
])
def test_a_misspelt_field_is_one_problem_not_also_a_missing_one(change, where):
    with pytest.raises(SpecError) as caught:
        load_spec(_changed(change))
    assert [str(p) for p in caught.value.errors] == [f"<spec>:1:1: {where}"]


def test_a_damaged_checkpoint_read_as_a_spec_is_one_located_line(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"junk")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == (f"{path}:1:1: (document): cannot be read as a checkpoint (not a whole zip archive, "
                                 "as torch.save writes: File is not a zip file); it may be truncated, or not a "
                                 "cortexgraph checkpoint")


def test_rescaling_keeps_an_areas_shape_and_names_what_cannot_scale():
    wide = _changed(lambda s: s["areas"]["A"].update(size=[4, 2]))
    assert load_spec(override(load_spec(wide), size=8)).areas["A"].size == (8, 4)
    assert load_spec(override(load_spec(SPEC), size=8)).to_dict()["areas"]["A"]["size"] == 8
    with pytest.raises(SpecError) as caught:
        override(load_spec(_changed(lambda s: s["areas"]["A"].update(size=2))), size=5)
    assert [(p.path, p.message) for p in caught.value.errors] == [
        ("areas.A.size", "area A's size 2 does not scale from input 4 to 5")]
    with pytest.raises(SpecError) as caught:
        override(load_spec(_changed(lambda s: s["input"].update(size=[4, 2]))), size=8)
    assert [(p.path, p.message) for p in caught.value.errors] == [("input.size", "only square inputs can be rescaled")]


@pytest.mark.parametrize("share, hint", [([], ""), ([1, 2], ""), ([[1], []], ""), ([[-1, 1]], ""),
                                         ("tiem", "; did you mean 'time'?")])
def test_a_share_that_is_not_one_is_one_message(share, hint):
    with pytest.raises(SpecError) as caught:
        load_spec(_changed(lambda s: s["edges"][0].update(share=share)))
    assert [(p.path, p.message) for p in caught.value.errors] == [(
        "edges[0].share", "share is 'time' (one set of weights for all steps), 'none' (a set per step) or a list of "
        f"step groups such as [[1, 2], [3, 4]]{hint}")]


def test_step_0_in_a_share_group_is_for_zero_delay_edges_only():
    with pytest.raises(SpecError) as caught:
        analyze(load_spec(_changed(lambda s: s["edges"][0].update(share=[[0, 1], [2, 3]]))))
    assert [(p.path, p.message) for p in caught.value.errors] == [
        ("edges[0].share", "share group step 0 is not a step at which the edge fires")]

    def into_b_at_zero_delay(s):
        s["areas"]["B"] = {"channels": 2, "size": 4}
        s["edges"][0].update(to="B", share=[[0, 1], [2, 3]], delay=0)
    assert analyze(load_spec(_changed(into_b_at_zero_delay))).edges[1].steps == (0, 1, 2, 3)


def test_load_spec_says_what_it_takes():
    with pytest.raises(TypeError, match="load_spec takes a path, a bundled name, text, a dict or a Spec, not int"):
        load_spec(42)


# --- training -----------------------------------------------------------------------------------------


def test_resuming_a_run_that_is_not_there_or_is_finished(tmp_path, capsys):
    from cortexgraph.train import train

    from .test_train import config

    spec = tmp_path / "small.json"
    spec.write_text(json.dumps(SPEC))
    with pytest.raises(CheckpointError, match="nothing to resume: .*checkpoint.pt does not exist"):
        train(config(str(spec), tmp_path / "none", resume=True))
    train(config(str(spec), tmp_path / "run", epochs=1, limit_batches=1))
    capsys.readouterr()
    train(config(str(spec), tmp_path / "run", epochs=1, limit_batches=1, resume=True, progress=True))
    assert "checkpoint.pt has finished all 1 epochs; nothing to do" in capsys.readouterr().out


def test_data_that_cannot_feed_the_spec_is_one_line(tmp_path):
    from cortexgraph.train.data import DataError, make_data

    spec = load_spec(SPEC)
    with pytest.raises(DataError, match="unknown data 'emnist'; choose one of "):
        make_data("emnist", spec)
    import numpy as np

    np.savez(tmp_path / "rgb.npz", x=np.zeros((10, 3, 4, 4), np.uint8), y=np.arange(10) % 2)
    with pytest.raises(DataError, match=r"^arrays:.*rgb.npz: images of 3 channels cannot be given to a spec whose "
                                        r"input has 2 \(one channel is repeated, three become one as greyscale; "
                                        r"others must match\)$"):
        make_data(f"arrays:{tmp_path / 'rgb.npz'}", spec)
    for part in ("train", "val"):
        (tmp_path / part).mkdir()
    with pytest.raises(DataError, match=r"^image files give 1 \(greyscale\) or 3 \(RGB\) channels but the spec's "
                                        r"input has 2$"):
        make_data(f"imagefolder:{tmp_path}", spec)


def test_a_limit_without_a_number_is_one_line(tmp_path, capsys):
    from cortexgraph.cli import main

    spec = tmp_path / "small.json"
    spec.write_text(json.dumps(SPEC))
    with pytest.raises(SystemExit) as caught:
        main(["validate", str(spec), "--limit", "steps=many"])
    assert "--limit takes NAME=NUMBER, got 'steps=many'" in str(caught.value) + capsys.readouterr().err


@pytest.mark.parametrize("extra", [1, 20, 21, 25])
def test_a_weight_map_lists_twenty_problems_and_counts_the_rest(extra):
    model = build(SPEC)
    # Every tensor of the model filled through the map, so the only problems are the `extra` unmapped names.
    state = {f"theirs.{k}": v for k, v in model.state_dict().items()}
    mapping = {f"theirs.{k}": k for k in model.state_dict()}
    state.update({f"extra{i}.weight": torch.zeros(1) for i in range(extra)})
    with pytest.raises(WeightMapError) as caught:
        load_mapped(model, state, mapping, "src")
    lines = str(caught.value).splitlines()
    shown = [f"  src's 'extra{i}.weight' has no counterpart in small" for i in range(min(extra, 20))]
    assert lines[1:] == shown + ([f"  ... and {extra - 20} more"] if extra > 20 else [])


LATE = """
cortexgraph: 1
name: late
input: {channels: 4, size: 8}
areas: {A: {channels: 4, size: 8}, B: {channels: 4, size: 8}}
inputs: {A: once}
steps: 3
defaults: {beyond: BEYOND}
edges:
  - {from: A, to: B, name: early, op: conv, at: 1, tie: late}
  - {from: A, to: B, name: late, op: conv, at: 6}
readout: {area: B, head: {classes: 2}}
"""


def test_an_edge_that_computes_only_past_the_built_steps_says_so():
    from cortexgraph import BeyondHorizonError, build

    for beyond in ("error", "reuse_last"):  # nothing to reuse either
        model = build(LATE.replace(", tie: late", "").replace("BEYOND", beyond))
        with pytest.raises(BeyondHorizonError) as caught:
            model(torch.randn(1, 4, 8, 8), steps=7)
        assert str(caught.value) == (
            "edge 'late' first computes at step 6, past the steps its model was built for, so the model holds no "
            "weights for it; build the model with more steps or a later defaults.horizon")


def test_a_tie_target_that_computes_only_past_the_horizon_has_no_norm_for_it():
    from cortexgraph import BeyondHorizonError, build

    model = build(LATE.replace("BEYOND", "error"))  # `late` holds weights: `early` borrows them
    with pytest.raises(BeyondHorizonError) as caught:
        model(torch.randn(1, 4, 8, 8), steps=7)
    assert str(caught.value) == (
        "edge 'late' computes at no step up to the horizon (3), so it has no norm for step 6 (defaults.beyond: "
        "error); run at most 3 steps, or set defaults.horizon or beyond: reuse_last")
    assert build(LATE.replace("BEYOND", "reuse_last"))(torch.randn(1, 4, 8, 8), steps=7).shape == (1, 2)
