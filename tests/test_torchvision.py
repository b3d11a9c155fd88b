"""The torchvision ResNet specs, loaded with torchvision's weights, are torchvision's ResNets."""

import pytest
import torch
import torchvision

from cortexgraph import build
from cortexgraph.interop import WeightMapError, load_torchvision
from cortexgraph.interop.torchvision import torchvision_names

from .helpers import assert_same_outputs_and_grads, randomize_norms


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_outputs_and_gradients_equal_torchvision(arch, train):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, arch)()
    randomize_norms(reference)
    ours = load_torchvision(f"torchvision/{arch}", reference)
    mapping = torchvision_names(ours, reference.state_dict())
    x = torch.randn(2, 3, 224, 224)
    assert_same_outputs_and_grads(reference, ours, mapping, x, train)


def test_parameter_counts_equal_torchvision():
    for arch in ["resnet18", "resnet34", "resnet50"]:
        reference = getattr(torchvision.models, arch)()
        ours = build(f"torchvision/{arch}")
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())


def test_weights_of_another_architecture_are_refused_with_every_reason():
    with pytest.raises(WeightMapError) as caught:
        load_torchvision("torchvision/resnet18", torchvision.models.resnet34())
    assert "resnet18 runs 8 transitions over 8 steps; a torchvision ResNet with 16 blocks" in str(caught.value)


def test_a_shared_spec_cannot_take_unshared_weights():
    with pytest.raises(WeightMapError) as caught:
        load_torchvision(build("torchvision/resnet18", share="time").spec, torchvision.models.resnet18())
    message = str(caught.value)
    assert "'layer1.0.conv1.weight' and 'layer1.1.conv1.weight' both map to 'edges.S1->S1.conv1.weight'" in message
    assert "shares weights that torchvision does not" in message


def test_a_leftover_key_is_named():
    state = torchvision.models.resnet18().state_dict()
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightMapError, match="torchvision's 'extra.weight' has no counterpart in resnet18"):
        load_torchvision("torchvision/resnet18", state)
