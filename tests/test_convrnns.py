"""The bundled ConvRNN streams (ConvGRU, ConvLSTM, reciprocal gated cells) and the leaky-integrator
stream against one loop written here from their equations, with the model's weights read by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cortexgraph import build, compile

AREAS = ["V1", "V2", "V4", "IT"]
STEPS = 3  # runs of 3 steps (0 to 3) of the bundled 8-step specs: the equations are the same at every step


def _conv(w, name, x, stride=1):
    weight = w[f"{name}.weight"]
    return F.conv2d(x, weight, w.get(f"{name}.bias"), stride=stride, padding=weight.shape[-1] // 2)


def _gated(cell: str, w, area: str, d, h, c):
    """One step of `cell` on drive d, value h and memory c (None: zeros)."""
    h = torch.zeros_like(d) if h is None else h
    c = torch.zeros_like(d) if c is None else c
    p = f"cells.{area}"
    if cell == "gru":  # (the bundled streams add PyTorchTNN's 1.0 to the reset gate and to the forget gate)
        z = torch.sigmoid(_conv(w, f"{p}.update", torch.cat([d, h], 1)))
        r = torch.sigmoid(_conv(w, f"{p}.reset", torch.cat([d, h], 1)) + 1.0)
        n = torch.tanh(_conv(w, f"{p}.candidate", torch.cat([d, r * h], 1)))
        return (1 - z) * n + z * h, None
    if cell == "lstm":
        i, f, g, o = _conv(w, f"{p}.gates", torch.cat([d, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    new_c = F.elu((1 - torch.sigmoid(_conv(w, f"{p}.memory_tau", c))) * c
                  + (1 - torch.sigmoid(_conv(w, f"{p}.memory_gate", h))) * _conv(w, f"{p}.input_to_memory", d))
    new_h = F.elu((1 - torch.sigmoid(_conv(w, f"{p}.value_tau", h))) * h
                  + (1 - torch.sigmoid(_conv(w, f"{p}.value_gate", c))) * d)
    return new_h, new_c


def gated_stream(cell: str, w, x):
    """PyTorchTNN's convention (`TemporalGraph.forward`): every area runs from step 0, its drive the conv and
    ReLU of the area below at t - 1, and at step 0 of the zeros that area held (relu of the conv's bias)."""
    h, c, readout = {}, {}, None
    for t in range(STEPS + 1):
        new = {}
        for i, area in enumerate(AREAS):
            if i == 0:
                d = F.relu(_conv(w, "edges.input->V1.conv", x))
            else:  # the area below at t - 1; before step 0, the zeros it held (V1: 32 x 32 x 32, ...)
                below = h[AREAS[i - 1]] if t else torch.zeros(x.shape[0], 16 << i, 64 >> i, 64 >> i, dtype=x.dtype)
                d = F.relu(_conv(w, f"edges.{AREAS[i - 1]}->{area}.conv", below, stride=2))
            new[area], c[area] = _gated(cell, w, area, d, h.get(area), c.get(area))
        h = new
        readout = h["IT"]
    return F.linear(readout.mean((2, 3)), w["head.fc.weight"], w["head.fc.bias"])


def leaky_stream(w, x):
    """Zero-delay feedforward, a linear lateral conv of the previous value, h = (1 - a) h + a relu(D)."""
    h, readout = {}, None
    for _ in range(STEPS + 1):
        below = None
        new = {}
        for i, area in enumerate(AREAS):
            d = _conv(w, "edges.input->V1.conv", x) if i == 0 else \
                _conv(w, f"edges.{AREAS[i - 1]}->{area}.conv", below, stride=2)
            if area in h:
                d = d + _conv(w, f"edges.{area}->{area}.conv", h[area])
            a = 1.0 / (1.0 + F.softplus(w[f"cells.{area}.raw_tau"]))  # dt / tau, tau = dt + softplus(raw)
            new[area] = a * F.relu(d) + ((1 - a) * h[area] if area in h else 0)
            below = new[area]
        h = new
        readout = h["IT"]
    return F.linear(readout.mean((2, 3)), w["head.fc.weight"], w["head.fc.bias"])


@pytest.mark.parametrize("name", ["gru-stream", "lstm-stream", "rgc-stream", "leaky-stream"])
def test_each_stream_computes_its_equations(name):
    torch.manual_seed(0)
    model = build(f"convrnn/{name}").double().train()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("raw_tau"):
                p.uniform_(-1, 2)  # a different tau per channel
            elif pname.endswith("bias"):
                p.uniform_(-0.5, 0.5)  # not the init's zeros: step 0 of silence: computed starts from relu(bias)
    params = dict(model.named_parameters())
    w = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    got = model(x, steps=STEPS)
    want = leaky_stream(w, x) if name == "leaky-stream" else gated_stream(name.split("-")[0], w, x)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    got.square().sum().backward()
    want.square().sum().backward()
    for key, p in params.items():
        torch.testing.assert_close(p.grad, w[key].grad, rtol=1e-9, atol=1e-10, msg=key)


def test_the_streams_sizes_are_known_before_building():
    for name in ["gru-stream", "lstm-stream", "rgc-stream", "leaky-stream"]:
        built = build(f"convrnn/{name}")
        assert compile(f"convrnn/{name}").size.parameters == sum(p.numel() for p in built.parameters())
