"""The torchvision ResNet specs, loaded with torchvision's weights, are torchvision's ResNets."""

import pytest
import torch
import torchvision

from cortexgraph import build, load_spec
from cortexgraph.interop import WeightMapError, load_torchvision
from cortexgraph.interop.torchvision import torchvision_names
from cortexgraph.overrides import override

from .helpers import Exploit, assert_same_outputs_and_grads, randomize_norms


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_outputs_and_gradients_equal_torchvision(arch, train):
    # At 64 pixels: the same convolutions, strides and adaptive pooling as at 224, a twelfth of the work.
    torch.manual_seed(0)
    reference = getattr(torchvision.models, arch)()
    randomize_norms(reference)
    ours = load_torchvision(override(load_spec(f"torchvision/{arch}"), size=64), reference)
    mapping = torchvision_names(ours, reference.state_dict())
    assert_same_outputs_and_grads(reference, ours, mapping, torch.randn(2, 3, 64, 64), train)


def test_the_bundled_spec_as_written_equals_torchvision_at_224():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    randomize_norms(reference)
    ours = load_torchvision("torchvision/resnet18", reference)
    mapping = torchvision_names(ours, reference.state_dict())
    assert_same_outputs_and_grads(reference, ours, mapping, torch.randn(2, 3, 224, 224), train=False)


def test_parameter_counts_equal_torchvision():
    for arch in ["resnet18", "resnet34", "resnet50"]:
        reference = getattr(torchvision.models, arch)()
        ours = build(f"torchvision/{arch}")
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())


def test_weights_of_another_architecture_are_refused_with_every_reason():
    with pytest.raises(WeightMapError) as caught:
        load_torchvision("torchvision/resnet18", torchvision.models.resnet34())
    assert str(caught.value) == ("resnet18 runs 8 transitions over 8 steps; a torchvision ResNet with 16 blocks "
                                 "needs one transition per step, one per block")


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


def test_weights_load_from_a_file_as_from_the_module(tmp_path):
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "plain.pth")
    torch.save({"state_dict": reference.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    expected = load_torchvision("torchvision/resnet18", reference).state_dict()
    for name in ("plain.pth", "wrapped.pth"):
        loaded = load_torchvision("torchvision/resnet18", str(tmp_path / name)).state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in expected.items()), name


def test_a_weight_of_the_wrong_shape_and_a_missing_one_are_named():
    state = torchvision.models.resnet18().state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(3)
    del state["fc.bias"]
    with pytest.raises(WeightMapError) as caught:
        load_torchvision("torchvision/resnet18", state)
    message = str(caught.value)
    assert ("torchvision's 'layer1.0.conv1.weight' is (3,) but 'edges.S1->S1.t1.conv1.weight' is (64, 64, 3, 3)"
            in message)
    assert message.endswith("resnet18's 'head.fc.bias' gets no value from torchvision")


def test_weight_files_that_are_not_state_dicts_are_one_line(tmp_path):
    with pytest.raises(WeightMapError, match="expected a state dict, a module or a checkpoint file; got list"):
        load_torchvision("torchvision/resnet18", [1, 2])
    (tmp_path / "broken.pth").write_bytes(b"not a zip")
    with pytest.raises(WeightMapError, match=r"broken.pth cannot be read as a state dict \(.*\); it may be truncated$"):
        load_torchvision("torchvision/resnet18", str(tmp_path / "broken.pth"))
    torch.save({"fc.weight": Exploit(tmp_path / "ran")}, tmp_path / "evil.pth")
    with pytest.raises(WeightMapError, match="evil.pth is refused: it holds objects other than tensors"):
        load_torchvision("torchvision/resnet18", str(tmp_path / "evil.pth"))
    assert not (tmp_path / "ran").exists()

