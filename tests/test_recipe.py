"""The paper's models train under the recipe such networks are trained with: `cortexgraph train`'s default
SGD (lr 0.1, momentum 0.9, weight decay 5e-4, cosine), on the real digits, shaped to each spec.

Two short epochs (20 batches of 32 each, 1,280 images seen) at the digits' own 8x8 (the ImageNet spec at
32x32, the smallest its stride-4 stem allows; 10 classes). Measured: test accuracy 54-91% (chance: 10%);
the bound below is three times chance. Before the post-net normalised pre-activation specs, frnn4-cifar's
loss went to 4e7 and stopped on non-finite gradients; before post-activation residual ops started as their
shortcut, the CIFAR ResNets stayed at chance.
"""

import math

import pytest

from cortexgraph.bundled import bundled_specs
from cortexgraph.train import TrainConfig, train

PAPER = sorted(name for name in bundled_specs() if name.startswith("liao2016/"))


@pytest.mark.parametrize("name", PAPER)
def test_every_paper_spec_trains_with_the_default_sgd_recipe(name, tmp_path):
    config = TrainConfig(spec=name, data="digits", size=32 if "imagenet" in name else 8, classes=10, epochs=2,
                         batch_size=32, limit_batches=20, anytime=False, progress=False, out=str(tmp_path))
    assert (config.optimizer, config.lr, config.momentum, config.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
    epochs = train(config)["epochs"]
    assert all(math.isfinite(e["train_loss"]) and math.isfinite(e["test_loss"]) for e in epochs)
    assert epochs[-1]["skipped_steps"] == 0
    assert epochs[-1]["test_acc"] >= 0.3, epochs
