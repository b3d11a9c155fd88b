"""Stimuli in time (`input.stimulus`): a sequence's frames (held or cycled past the last), or an image shown
at some steps and then a blank or a mask; against a loop written here over the model's own modules, with
the pre-net run once per distinct frame."""

import pytest
import torch

from cortexgraph import SpecError, build, compile, draw
from cortexgraph.model import InputError
from cortexgraph.summary import summarize

from .helpers import randomize_norms

STEPS = 5


def spec(stimulus: dict | None) -> dict:
    return {"cortexgraph": 1, "name": "seen", "steps": STEPS,
            "input": {"channels": 2, "size": 8, **({"stimulus": stimulus} if stimulus is not None else {})},
            "prenet": [{"conv": {"out": 3}}],
            "areas": {"A": {"channels": 4, "size": 8}, "B": {"channels": 6, "size": 4}},
            "inputs": {"A": {"at": "every", "op": "conv"}},
            "edges": [{"from": "A", "to": "A", "op": "conv"}, {"from": "A", "to": "B", "op": "down"}],
            "readout": {"area": "B", "head": {"classes": 3}}}


def hand_loop(model, shown):
    """Logits of B at the last step, `shown(t)` the image entering at step t; the pre-net once per image."""
    made, h = {}, {}
    for t in range(STEPS + 1):
        image = shown(t)
        if id(image) not in made:
            made[id(image)] = model.prenet(image)
        a = model.edges["input->A"](made[id(image)], t)
        if "A" in h:
            a = a + model.edges["A->A"](h["A"], t)
        new = {"A": a}
        if "A" in h:
            new["B"] = model.edges["A->B"](h["A"], t)
        h.update(new)
    return model.head(h["B"])


def frames_of(x):
    return [x[:, k] for k in range(x.shape[1])]


CASES = {
    "frames held": ({"frames": "hold"}, (2, 3, 2, 8, 8),
                    lambda x, m: lambda t, f=frames_of(x): f[min(t, 2)]),
    "frames cycled": ({"frames": "cycle"}, (2, 3, 2, 8, 8), lambda x, m: lambda t, f=frames_of(x): f[t % 3]),
    "shown, then a blank": ({"show": {"to": 1}, "blank": 0.5}, (2, 2, 8, 8),
                            lambda x, m: lambda t, blank=torch.full_like(x, 0.5): x if t <= 1 else blank),
    "shown, then a mask": ({"show": [0, 2], "then": "mask"}, (2, 2, 8, 8),
                           lambda x, m: lambda t: x if t in (0, 2) else m),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("train", [False, True])
def test_what_enters_at_each_step_is_what_the_stimulus_says(name, train):
    stimulus, shape, shown = CASES[name]
    torch.manual_seed(0)
    model = build(spec(stimulus)).double()
    randomize_norms(model)
    model.train(train)
    x = torch.randn(*shape, dtype=torch.float64)
    mask = torch.randn(2, 2, 8, 8, dtype=torch.float64) if stimulus.get("then") == "mask" else None
    prenet_calls = []
    model.prenet.register_forward_hook(lambda m, i, o: prenet_calls.append(1))
    got = model(x, mask=mask)
    distinct = len(prenet_calls)
    prenet_calls.clear()
    want = hand_loop(model, shown(x, mask))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert distinct == len(prenet_calls) == {"frames held": 3, "frames cycled": 3}.get(name, 2)


def test_one_image_still_enters_once_through_the_pre_net():
    model = build(spec(None)).eval()
    calls = []
    model.prenet.register_forward_hook(lambda m, i, o: calls.append(1))
    x = torch.randn(2, 2, 8, 8)
    model(x)
    assert calls == [1]
    torch.testing.assert_close(model(x), hand_loop(model, lambda t: x))


def test_a_mask_of_one_image_is_shown_to_every_sample():
    model = build(spec({"show": "once", "then": "mask"})).eval()
    x, mask = torch.randn(3, 2, 8, 8), torch.randn(2, 8, 8)
    torch.testing.assert_close(model(x, mask=mask), model(x, mask=mask.expand(3, -1, -1, -1)))


def test_sequences_work_with_early_exit_features_and_every_step():
    model = build(spec({"frames": "hold"})).eval()
    x = torch.randn(4, 3, 2, 8, 8)
    with torch.no_grad():
        full = model(x, readout="all")
        early = model(x, exit_threshold=0.4)
        _, states = model(x, return_states=True)
        features = model.features(x, [("A", 4)])
    for i, t in enumerate(early.steps.tolist()):
        torch.testing.assert_close(early.logits[i], full[t][i])
    torch.testing.assert_close(features[("A", 4)], states[("A", 4)])


@pytest.mark.parametrize("stimulus, x, mask, message", [
    ({"frames": "hold"}, (2, 2, 8, 8), None, "seen expects input of shape (batch, frames, 2, 8, 8) (input: "
                                              "channels 2, size 8x8, a sequence of frames); got (2, 2, 8, 8)"),
    (None, (2, 3, 2, 8, 8), None, "seen expects input of shape (batch, 2, 8, 8) (input: channels 2, size 8x8); "
                                  "got (2, 3, 2, 8, 8)"),
    ({"show": "once", "then": "mask"}, (2, 2, 8, 8), None, "seen shows a mask after its image: call "
                                                           "model(x, mask=m)"),
    (None, (2, 2, 8, 8), (2, 8, 8), "seen shows no mask (input.stimulus has no then: mask); drop mask="),
    ({"show": "once", "then": "mask"}, (2, 2, 8, 8), (3, 2, 8, 8), "seen expects a mask of shape (2, 8, 8) or "
                                                                   "(batch, 2, 8, 8); got (3, 2, 8, 8)"),
])
def test_inputs_that_do_not_fit_the_stimulus_are_one_message(stimulus, x, mask, message):
    model = build(spec(stimulus))
    with pytest.raises(InputError) as caught:
        model(torch.randn(*x), mask=None if mask is None else torch.randn(*mask))
    assert str(caught.value) == message


@pytest.mark.parametrize("stimulus, message", [
    ({}, "input.stimulus: give one of frames (hold or cycle: a sequence, frame k at step k) and show"),
    ({"frames": "hold", "show": "once"}, "input.stimulus: give one of frames"),
    ({"frames": "hold", "blank": 0.5}, "input.stimulus: then and blank go with show"),
    ({"frames": "loop"}, "input.stimulus.frames"),
    ({"show": "sometimes"}, "input.stimulus.show"),
])
def test_bad_stimuli_are_located(stimulus, message):
    with pytest.raises(SpecError) as caught:
        compile(spec(stimulus))
    assert message in str(caught.value)


def test_an_image_shown_only_when_no_input_edge_fires_is_warned_of():
    from cortexgraph import analyze, load_spec

    doc = spec({"show": {"from": 2}})
    doc["inputs"] = {"A": {"at": "once", "op": "conv"}}
    assert [str(w) for w in analyze(load_spec(doc)).warnings] == [
        "<spec>:1:1: input.stimulus.show: warning: the image is never shown at a step an input edge fires (shown "
        "at 2, 3, 4, 5, entering at 0): the network sees only the blank (show it at a step its input edges fire "
        "('inputs'))"]
    assert analyze(load_spec(spec({"show": {"from": 2}}))).warnings == []


def test_moving_digits_slide_across_one_frame_per_step(tmp_path):
    from cortexgraph import load_spec
    from cortexgraph.train import DataError, TrainConfig, train
    from cortexgraph.train.data import make_data, stacked

    doc = load_spec("demo/frnn3-digits").to_dict()  # 6 steps: 7 frames
    doc |= {"name": "moving", "input": {**doc["input"], "stimulus": {"frames": "hold"}}, "inputs": {"V1": "every"}}
    data = make_data("digits-moving", load_spec(doc))
    still = make_data("digits", load_spec("demo/frnn3-digits"))
    x, y = stacked(data.test)
    image, label = stacked(still.test)
    assert x.shape == (360, 7, 1, 16, 16) and torch.equal(y, label)
    torch.testing.assert_close(x[:, 3], image)  # the middle frame is the digit where it was
    shift = 3  # a fifth of 16 pixels: frames shifted -3, -2, -1, 0, 1, 2, 3
    torch.testing.assert_close(x[:, 6, ..., shift:], image[..., :-shift])
    torch.testing.assert_close(x[:, 0, ..., :-shift], image[..., shift:])
    with pytest.raises(DataError, match="moving takes sequences .* use --data digits-moving"):
        make_data("digits", load_spec(doc))
    with pytest.raises(DataError, match="digits-moving gives sequences, one frame per step, but frnn3-digits"):
        make_data("digits-moving", load_spec("demo/frnn3-digits"))
    with pytest.raises(DataError, match="seen shows a mask after its image .* no data set here gives masks"):
        make_data("digits", load_spec(spec({"show": "once", "then": "mask"})))
    path = tmp_path / "moving.yaml"
    path.write_text(load_spec(doc).to_yaml())
    result = train(TrainConfig(spec=str(path), data="digits-moving", out=str(tmp_path / "run"), epochs=1,
                               batch_size=64, progress=False, limit_batches=3))
    assert result["epochs"][0]["train_loss"] > 0


def test_drawings_show_what_enters_when():
    masked = spec({"show": {"to": 1}, "then": "mask"})
    assert "shown at steps 0-1, then a mask" in draw(masked).source
    unrolled = draw(masked, "unrolled").source
    shown = [line.split("label=<")[1].split(">")[0] for line in unrolled.splitlines() if "shown_" in line]
    assert shown == ["image", "image", "mask", "mask", "mask"]  # A at step 5 feeds nothing read: pruned
    assert '"input@3" -> "A@3"' in unrolled  # each step's input comes from what is shown then
    frames = draw(spec({"frames": "cycle"}), "unrolled").source
    assert "label=<frame 4>" in frames
    assert "a sequence: frame t at step t, the last cycled" in draw(spec({"frames": "cycle"})).source
    assert "shown_" not in draw(spec(None), "unrolled").source  # one image: drawn as it always was


def test_the_pre_net_runs_only_on_frames_that_enter_and_is_counted_so():
    doc = spec({"show": {"to": 1}, "then": "mask"})
    doc["inputs"] = {"A": {"at": [0, 1], "op": "conv"}}  # the mask is shown from step 2, when nothing enters
    model = build(doc).eval()
    calls = []
    model.prenet.register_forward_hook(lambda m, i, o: calls.append(1))
    model(torch.randn(2, 2, 8, 8), mask=torch.randn(2, 8, 8))
    assert calls == [1]
    plain, masked = summarize(build(spec(None))), summarize(build(spec({"show": {"to": 1}, "then": "mask"})))
    assert masked["flops"] - plain["flops"] == plain["prenet"]["flops"]  # the mask through the pre-net once
    assert (plain["prenet"]["runs"], masked["prenet"]["runs"]) == (1, 2)
    held = summarize(build(spec({"frames": "hold"})))
    # A takes a frame at steps 0-4 (A at step 5 feeds nothing read): five frames, four more than one image
    assert held["flops"] - plain["flops"] == 4 * plain["prenet"]["flops"]


@pytest.mark.dynamo
@pytest.mark.parametrize("stimulus", [{"frames": "hold"}, {"show": {"to": 1}, "then": "mask"}])
def test_stimuli_trace_as_one_graph(stimulus):
    model = build(spec(stimulus)).eval()
    x = torch.randn(2, 3, 2, 8, 8) if "frames" in stimulus else torch.randn(2, 2, 8, 8)
    kwargs = {"mask": torch.randn(2, 8, 8)} if "then" in stimulus else {}
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # fails on any graph break
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, **kwargs), model(x, **kwargs))


DELAYED = {"cortexgraph": 1, "name": "delayed", "steps": 4, "input": {"channels": 1, "size": 2,
                                                                       "stimulus": {"frames": "hold"}},
           "areas": {"B": {"channels": 1, "size": 2}, "C": {"channels": 1, "size": 2}}, "inputs": {"C": "every"},
           "edges": [{"from": "input", "to": "B", "op": "identity", "delay": 2, "at": "all"},
                     {"from": "B", "to": "C", "op": "identity"}],
           "readout": {"area": "C", "head": {"classes": 2}}}


def test_an_input_edge_of_delay_d_carries_the_frame_shown_d_steps_earlier():
    from cortexgraph import analyze, load_spec

    frames = torch.arange(5.0).reshape(1, 5, 1, 1, 1).expand(1, 5, 1, 2, 2)
    _, states = build(DELAYED)(frames, return_states=True)
    assert {t: float(states[("B", t)][0, 0, 0, 0]) for t in range(5) if ("B", t) in states} == {2: 0, 3: 1, 4: 2}
    # C: frame t, plus B of the step before (identity edges of the usual delay 1)
    assert [float(states[("C", t)][0, 0, 0, 0]) for t in range(5)] == [0, 1, 2, 3 + 0, 4 + 1]
    analysis = analyze(load_spec(DELAYED))
    assert analysis.arrival["B"] == 2
    assert "@ 2-4, delay 2" in draw(DELAYED).source
    # frame 0 into C at step 0; B carries frames 0 and 1 at steps 2 and 3 into C at steps 3 and 4 (B at step 4
    # feeds nothing read): the pre-net runs on frames 0 and 1, not on those of the steps the edges fire at
    only_delayed = {**DELAYED, "inputs": {"C": "once"}}
    assert build(only_delayed).plan_for(readout="all").frames_entering() == {0, 1}
    unrolled = draw(DELAYED, "unrolled").source  # C at step 4 reads B at 3, which carries frame 1
    assert '"input@1" -> "B@3"' in unrolled and '"input@4" -> "C@4"' in unrolled


def test_an_input_edge_cannot_fire_before_its_first_frame_arrives():
    doc = {**DELAYED, "edges": [{**DELAYED["edges"][0], "at": [1, 3]}, DELAYED["edges"][1]]}
    with pytest.raises(SpecError) as caught:
        compile(doc)
    assert str(caught.value) == (
        "<spec>:1:1: edges[0].at: an input edge of delay 2 carries the frame shown 2 steps earlier, so it cannot "
        "fire before step 2 (it is written to fire at step 1) (let it fire from step 2 ('at: all' does), or lower "
        "its delay)")
