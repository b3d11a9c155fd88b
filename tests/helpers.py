"""Shared test helpers: random BatchNorm statistics, output/gradient comparison through a name map, a run
that dies after its first checkpoint, and the count of values the spec reader builds."""

from contextlib import contextmanager

import torch
from torch import nn


def randomize_norms(module: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters (fresh ones are 0/1), and every
    conv that starts at zero (a residual branch's last: defaults.zero_init_residual) random weights, so
    that every part of every block shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    convs = torch.Generator().manual_seed(seed + 1)  # the norms' values do not depend on which convs were zero
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and not m.weight.any():
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=convs) * (2 / m.weight[0].numel()) ** 0.5)
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)


def assert_same_outputs_and_grads(reference, ours, mapping, x, train):
    """Run both on x (train or eval mode); outputs, parameter gradients and running statistics
    must agree to 1e-5. `mapping` maps the reference's state-dict names to ours."""
    reference.train(train)
    ours.train(train)
    ref_out, our_out = reference(x), ours(x)
    torch.testing.assert_close(our_out, ref_out, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(ref_out)
    (ref_out * weights).sum().backward()
    (our_out * weights).sum().backward()
    ref_params = dict(reference.named_parameters())
    our_params = dict(ours.named_parameters())
    our_state = ours.state_dict()
    checked = 0
    for theirs, mine in mapping.items():
        if theirs in ref_params:
            torch.testing.assert_close(our_params[mine].grad, ref_params[theirs].grad, rtol=1e-5, atol=1e-5,
                                       msg=lambda m, t=theirs: f"gradient of {t}: {m}")
            checked += 1
        else:  # buffers: running statistics must have moved the same way
            torch.testing.assert_close(our_state[mine], reference.state_dict()[theirs], rtol=1e-5, atol=1e-5)
    assert checked == len(ref_params)


class Stopped(Exception):
    """The run died (in a test)."""


def train_until_the_first_checkpoint(config, monkeypatch) -> None:
    """Run training that dies right after writing its first checkpoint, as a killed run would."""
    import cortexgraph.train.loop as training

    stopped_after_the_first_checkpoint(lambda: training.train(config), monkeypatch)


def stopped_after_the_first_checkpoint(run, monkeypatch) -> None:
    """`run()` (training, from Python or the command line) dies right after writing its first checkpoint."""
    import pytest

    import cortexgraph.train.loop as training

    saved = training.save_checkpoint

    def save_then_stop(*args, **kwargs):
        saved(*args, **kwargs)
        raise Stopped

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    with pytest.raises(Stopped):
        run()
    monkeypatch.setattr(training, "save_checkpoint", saved)


@contextmanager
def counted_values():
    """Count the values the reader builds (calls of its tree walk): the work an alias bomb would multiply."""
    from cortexgraph import source

    calls = [0]
    original = source._Walker.walk

    def walk(self, node, loc):
        calls[0] += 1
        return original(self, node, loc)

    source._Walker.walk = walk
    try:
        yield calls
    finally:
        source._Walker.walk = original


class Exploit:
    """Pickled, it runs a shell command that creates `marker`: a file that must never appear."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


class PoisonedPixel(torch.utils.data.Dataset):
    """A data set whose `index`-th image has one NaN pixel (the data sets shape their images when asked)."""

    def __init__(self, dataset, index: int = 5):
        self.dataset, self.index = dataset, index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        image, label = self.dataset[i]
        if i == self.index:
            image = image.clone()
            image.view(-1)[0] = float("nan")
        return image, label


def poison_one_training_image(monkeypatch) -> None:
    """Training data (of every run in the test) with one NaN pixel in one image."""
    import cortexgraph.train.loop as training

    real = training.make_data

    def make_data(*args, **kwargs):
        data = real(*args, **kwargs)
        data.train = PoisonedPixel(data.train)
        return data

    monkeypatch.setattr(training, "make_data", make_data)
