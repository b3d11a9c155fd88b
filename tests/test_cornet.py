"""CORnet-S as a spec equals CORnet-S as published, with its published weight names.

The reference below is written in these tests from CORnet-S's published
structure (Kubilius et al. 2019; github.com/dicarlolab/CORnet, cornet_s.py):
module and parameter names follow that code, so its state dict has the
published layout.
"""

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cortexgraph import load_spec
from cortexgraph.interop import WeightMapError, load_cornet_s
from cortexgraph.interop.cornet import cornet_s_names
from cortexgraph.overrides import override

from .helpers import assert_same_outputs_and_grads, randomize_norms


class ReferenceBlock(nn.Module):
    """CORblock_S: a 1x1 input conv, then `times` steps of a bottleneck sharing conv1-3 with one
    BatchNorm triple per step; the first step is strided and adds a strided, normalised skip."""

    scale = 4

    def __init__(self, cin, cout, times):
        super().__init__()
        self.times = times
        wide = cout * self.scale
        self.conv_input = nn.Conv2d(cin, cout, 1, bias=False)
        self.skip = nn.Conv2d(cout, cout, 1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cout, wide, 1, bias=False)
        self.conv2 = nn.Conv2d(wide, wide, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(wide, cout, 1, bias=False)
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(cout))

    def forward(self, inp):
        x = self.conv_input(inp)
        for t in range(self.times):
            skip = self.norm_skip(self.skip(x)) if t == 0 else x
            h = F.relu(getattr(self, f"norm1_{t}")(self.conv1(x)))
            h = F.conv2d(h, self.conv2.weight, stride=2 if t == 0 else 1, padding=1)
            h = F.relu(getattr(self, f"norm2_{t}")(h))
            h = getattr(self, f"norm3_{t}")(self.conv3(h))
            x = F.relu(h + skip)
        return x


def reference_cornet_s():
    v1 = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)), ("norm1", nn.BatchNorm2d(64)),
        ("nonlin1", nn.ReLU()), ("pool", nn.MaxPool2d(3, stride=2, padding=1)),
        ("conv2", nn.Conv2d(64, 64, 3, padding=1, bias=False)), ("norm2", nn.BatchNorm2d(64)),
        ("nonlin2", nn.ReLU())]))
    decoder = nn.Sequential(OrderedDict([
        ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("linear", nn.Linear(512, 1000))]))
    return nn.Sequential(OrderedDict([("V1", v1), ("V2", ReferenceBlock(64, 128, 2)),
                                      ("V4", ReferenceBlock(128, 256, 4)), ("IT", ReferenceBlock(256, 512, 2)),
                                      ("decoder", decoder)]))


def cornet_spec(size):
    """The bundled spec at another input size (the areas scale with it), to keep the tests quick."""
    return override(load_spec("cornet/cornet-s"), size=size)


def published_state_dict(reference):
    """As CORnet's published checkpoints hold it: saved from a DataParallel model."""
    return {"module." + k: v for k, v in reference.state_dict().items()}


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_outputs_and_gradients_equal_the_published_structure(train):
    torch.manual_seed(0)
    reference = reference_cornet_s()
    randomize_norms(reference)
    ours = load_cornet_s(published_state_dict(reference), spec=cornet_spec(64))
    mapping = cornet_s_names(ours)
    assert_same_outputs_and_grads(reference, ours, mapping, torch.randn(2, 3, 64, 64), train)


def test_bundled_spec_at_224_equals_the_reference():
    torch.manual_seed(1)
    reference = reference_cornet_s().eval()
    randomize_norms(reference)
    ours = load_cornet_s({"state_dict": published_state_dict(reference)}).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_parameter_count_is_cornet_s():
    ours = load_cornet_s(published_state_dict(reference_cornet_s()))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference_cornet_s().parameters())


def test_the_entry_shares_the_recurrence_weights_and_keeps_its_own_norms():
    ours = load_cornet_s(published_state_dict(reference_cornet_s()), spec=cornet_spec(64))
    entry, recurrence = ours.weight_set("edges.V1->V2"), ours.weight_set("edges.V2->V2")
    assert entry.conv1 is recurrence.conv1 and entry.conv2 is recurrence.conv2
    assert entry.norm1 is not recurrence.norm1
    names = set(ours.state_dict())
    assert "edges.V1->V2.conv_input.weight" in names and "edges.V1->V2.conv1.weight" not in names
    assert {"edges.V4->V4.norm1.t4.weight", "edges.V4->V4.norm1.t6.weight", "edges.V2->V4.norm1.weight"} <= names


def test_missing_and_extra_published_keys_are_named():
    state = published_state_dict(reference_cornet_s())
    del state["module.V4.norm2_3.weight"]
    state["module.V4.norm2_4.weight"] = torch.ones(1024)
    with pytest.raises(WeightMapError) as caught:
        load_cornet_s(state)
    message = str(caught.value)
    assert "CORnet-S's 'V4.norm2_4.weight' has no counterpart in cornet-s" in message
    assert "'edges.V4->V4.norm2.t6.weight' gets no value from CORnet-S (expected 'V4.norm2_3.weight')" in message
