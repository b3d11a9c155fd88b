"""Losses over readout steps (`readout.loss`) and temporal decoders (`readout.decoder`): the prediction
`model(x)` makes of several readout steps, and what training minimises, against the same sums by hand."""

import pytest
import torch
import torch.nn.functional as F

from cortexgraph import SpecError, build, compile, load_spec
from cortexgraph.bundled import bundled_specs
from cortexgraph.model import CortexNet
from cortexgraph.train import TrainConfig, train

SPEC = """
cortexgraph: 1
name: objectives
input: {channels: 1, size: 6}
prenet: [{conv: {out: 3}}]
areas: {A: {channels: 3, size: 6}}
inputs: {A: once}
steps: 3
transitions: {A: {A: conv}}
readout: {area: A, step: [1, 2, 3], head: {classes: 4}READOUT}
"""


def model_with(readout: str = "") -> CortexNet:
    torch.manual_seed(0)
    return build(SPEC.replace("READOUT", readout)).double().eval()


X = torch.randn(5, 1, 6, 6, dtype=torch.float64)


def test_by_default_the_prediction_is_the_mean_of_the_readout_steps_and_the_loss_is_its_own():
    model = model_with()
    steps = model(X, readout="steps")
    assert list(steps) == [1, 2, 3]
    torch.testing.assert_close(model(X), torch.stack(list(steps.values())).mean(0))
    assert model.loss_readout is None
    y = torch.tensor([0, 1, 2, 3, 0])
    torch.testing.assert_close(model.loss(model(X), y), F.cross_entropy(model(X), y))


def test_the_last_decoder_predicts_the_last_step():
    model = model_with(", decoder: last")
    torch.testing.assert_close(model(X), model(X, readout="steps")[3])


def test_the_weighted_decoder_learns_a_softmax_weight_a_step():
    model = model_with(", decoder: weighted")
    with torch.no_grad():
        model.head.step_weights.copy_(torch.tensor([0.5, -1.0, 2.0]))
    steps = model(X, readout="steps")
    w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64).softmax(0)
    torch.testing.assert_close(model(X), sum(wi * steps[t] for wi, t in zip(w, (1, 2, 3))))
    model(X).square().sum().backward()
    assert model.head.step_weights.grad.abs().sum() > 0
    assert compile(SPEC.replace("READOUT", ", decoder: weighted")).size.parameters == sum(
        p.numel() for p in model.parameters())


def test_the_confident_decoder_takes_each_sample_s_most_confident_step():
    model = model_with(", decoder: confident")
    steps = model(X, readout="steps")
    got = model(X)
    for i in range(len(X)):
        confidence = {t: float(steps[t][i].detach().softmax(0).max()) for t in steps}
        best = max(confidence, key=confidence.get)
        torch.testing.assert_close(got[i], steps[best][i])


@pytest.mark.parametrize("loss, weights", [
    ("last", [0, 0, 1]), ("uniform", [1 / 3] * 3), ("increasing", [1 / 6, 2 / 6, 3 / 6]),
    ("[1, 0, 3]", [0.25, 0, 0.75]), ("sum", [1, 1, 1]),
])
def test_a_loss_over_steps_weighs_each_step_s_own_loss(loss, weights):
    model = model_with(f", loss: {loss}")
    assert model.spec.loss_weights == pytest.approx(weights)
    assert model.loss_readout == "steps"
    y = torch.tensor([0, 1, 2, 3, 0])
    steps = model(X, readout="steps")
    want = sum(w * F.cross_entropy(steps[t], y) for w, t in zip(weights, (1, 2, 3)))
    torch.testing.assert_close(model.loss(steps, y), want)
    torch.testing.assert_close(model.prediction(steps), model(X))  # the prediction is still the decoder's
    with pytest.raises(ValueError) as caught:
        model.loss(model(X), y)  # the final logits: not the loss over steps
    assert str(caught.value).endswith("readout.loss weighs the loss of each readout step: give model.loss the "
                                      'output of model(x, readout="steps") (model.loss_readout), not the final logits')


def test_training_minimises_the_loss_over_steps(tmp_path, monkeypatch):
    seen = []
    loss = CortexNet.loss

    def recorded(self, output, target, criterion=F.cross_entropy):
        seen.append(sorted(output) if isinstance(output, dict) else None)
        return loss(self, output, target, criterion)

    monkeypatch.setattr(CortexNet, "loss", recorded)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("READOUT", ", loss: uniform").replace("channels: 1", "channels: 3"))
    result = train(TrainConfig(spec=str(spec), data="synthetic", out=str(tmp_path / "run"), epochs=1,
                               batch_size=16, progress=False, limit_batches=2))
    assert seen and all(s == [1, 2, 3] for s in seen)  # training and evaluation, one pass each
    assert result["epochs"][-1]["train_loss"] > 0
    # one readout step, read with the anytime curve: evaluation hands the loss that step's logits by step too
    seen.clear()
    spec.write_text(SPEC.replace("READOUT", ", loss: uniform").replace("channels: 1", "channels: 3")
                    .replace("step: [1, 2, 3]", "step: 3"))
    result = train(TrainConfig(spec=str(spec), data="synthetic", out=str(tmp_path / "one"), epochs=1,
                               batch_size=16, progress=False, limit_batches=2))
    assert seen and all(s == [3] for s in seen) and result["epochs"][-1]["test_loss"] > 0


def test_every_bundled_spec_keeps_the_mean_and_the_loss_of_its_prediction():
    for name in bundled_specs():
        spec = load_spec(name)
        if name == "blt/spoerer2020-bl":  # trained with a loss at every step, as published
            assert spec.loss_weights == (1 / 8,) * 8
            continue
        if name.startswith("blt/") and "spoerer" not in name:  # train_net.py sums the 10 steps' losses
            assert (spec.readout.loss, spec.loss_weights) == ("sum", (1.0,) * 10)
            continue
        assert (spec.readout.decoder, spec.readout.loss, spec.loss_weights) == ("mean", "prediction", None)


@pytest.mark.parametrize("readout, message", [
    (", loss: [1, 2]", "readout.loss: 2 loss weights for 3 readout steps (give one weight for each step"),
    (", loss: [0, 0, 0]", "readout.loss: every loss weight is 0"),
    (", loss: [1, -1, 0]", "readout.loss"),
    (", loss: average", "readout.loss"),
    (", decoder: weighted, loss: uniform", "readout.decoder: a learned weighted mean is trained by the loss of "
                                           "the prediction"),
    (", decoder: vote", "readout.decoder"),
])
def test_bad_objectives_are_located(readout, message):
    with pytest.raises(SpecError) as caught:
        compile(SPEC.replace("READOUT", readout))
    assert message in str(caught.value)
