"""Every layer op's values against a reference written with torch.nn.functional from the op's definition.

The op is built as a spec builds it (its registered OpDef, an OpContext); the reference reads its weights
by name and computes the published formula. Norms get random statistics and the ops run in eval mode, so
a swapped pooling kind, a lost stride or padding, or a skipped norm shows in the values.
"""

import pytest
import torch
import torch.nn.functional as F

from cortexgraph.model import Head
from cortexgraph.ops.layers import OpContext
from cortexgraph.ops.norm_spec import parse_norm
from cortexgraph.ops.registry import lookup
from cortexgraph.spec import Head as HeadSpec

from .helpers import randomize_norms


def built(where: str, name: str, src, dst, **params):
    op = lookup(where, name)
    params = op.params(**params)
    dst = op.infer(src, params) if dst is None else dst  # a pre-net layer's shape follows from its input
    module = op.load()(OpContext(name, src, dst, params, norm_policy="shared", norm_steps=(1,)))
    randomize_norms(module)
    return module.eval()


def norm(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)


def run(module, x, where="transition"):
    with torch.no_grad():
        return module(x, 1) if where == "transition" else module(x)


@pytest.fixture
def x():
    return torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))


def test_identity(x):
    assert torch.equal(run(built("transition", "identity", (4, 8, 8), (4, 8, 8)), x), x)


@pytest.mark.parametrize("kernel, bias", [(3, False), (1, True), (5, False)])
def test_conv_at_the_same_size(x, kernel, bias):
    m = built("transition", "conv", (4, 8, 8), (6, 8, 8), kernel=kernel, bias=bias)
    expected = F.relu(norm(F.conv2d(x, m.conv.weight, m.conv.bias, stride=1, padding=kernel // 2), m.norm))
    torch.testing.assert_close(run(m, x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("factor", [2, 4])
def test_down_is_a_strided_conv(x, factor):
    m = built("transition", "down", (4, 8, 8), (6, 8 // factor, 8 // factor))
    expected = F.relu(norm(F.conv2d(x, m.conv.weight, stride=factor, padding=1), m.norm))
    torch.testing.assert_close(run(m, x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_up_resizes_then_convolves(x, mode):
    m = built("transition", "up", (4, 8, 8), (6, 16, 16), mode=mode)
    resized = F.interpolate(x, scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    expected = F.relu(norm(F.conv2d(resized, m.conv.weight, padding=1), m.norm))
    torch.testing.assert_close(run(m, x), expected, rtol=0, atol=1e-6)


def test_up_by_transposed_conv(x):
    m = built("transition", "up", (4, 8, 8), (6, 32, 32), mode="transpose")
    expected = F.relu(norm(F.conv_transpose2d(x, m.conv.weight, stride=4), m.norm))
    torch.testing.assert_close(run(m, x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind, reference", [("max", F.max_pool2d), ("avg", F.avg_pool2d)])
def test_pool_edges(x, kind, reference):
    m = built("transition", "pool", (4, 8, 8), (4, 4, 4), kind=kind)
    torch.testing.assert_close(run(m, x), reference(x, 2, 2), rtol=0, atol=0)
    assert not torch.equal(F.max_pool2d(x, 2, 2), F.avg_pool2d(x, 2, 2))  # the kinds differ on this input


@pytest.mark.parametrize("params", [dict(out=6), dict(out=6, kernel=7, stride=2, padding=3, bias=True),
                                    dict(out=6, norm=False), dict(out=6, act=False), dict(out=6, kernel=1)])
def test_prenet_conv(x, params):
    m = built("prenet", "conv", (4, 8, 8), None, **params)
    kernel, stride = params.get("kernel", 3), params.get("stride", 1)
    y = F.conv2d(x, m.conv.weight, m.conv.bias, stride=stride, padding=params.get("padding", kernel // 2))
    y = norm(y, m.norm) if params.get("norm", True) else y
    expected = F.relu(y) if params.get("act", True) else y
    torch.testing.assert_close(run(m, x, "prenet"), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name, reference", [("maxpool", F.max_pool2d), ("avgpool", F.avg_pool2d)])
@pytest.mark.parametrize("params", [dict(kernel=2), dict(kernel=3, stride=2, padding=1), dict(kernel=3, stride=1)])
def test_prenet_pools(x, name, reference, params):
    m = built("prenet", name, (4, 8, 8), None, **params)
    expected = reference(x, params["kernel"], params.get("stride") or params["kernel"], params.get("padding", 0))
    torch.testing.assert_close(run(m, x, "prenet"), expected, rtol=0, atol=0)


@pytest.mark.parametrize("pool", ["avg", "max", "none"])
@pytest.mark.parametrize("head_norm", ["none", "shared"])
def test_heads(x, pool, head_norm):
    head = Head({"A": (4, 8, 8)}, HeadSpec(classes=3, pool=pool, dropout=0.5), parse_norm(head_norm), (1,), "relu")
    randomize_norms(head)
    head.eval()  # dropout is the identity in eval mode
    h = F.relu(norm(x, head.norm)) if head_norm != "none" else x
    pooled = {"avg": lambda t: t.mean((2, 3)), "max": lambda t: t.amax((2, 3)), "none": lambda t: t.flatten(1)}[pool]
    with torch.no_grad():
        torch.testing.assert_close(head(x), F.linear(pooled(h), head.fc.weight, head.fc.bias), rtol=0, atol=1e-6)
