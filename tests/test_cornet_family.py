"""CORnet-Z, CORnet-R and CORnet-RT against references written here from CORnet's published structure
(github.com/dicarlolab/CORnet: cornet_z.py, cornet_r.py, cornet_rt.py), with their module names, so that
their state dicts have the published layout (`module.V1.conv_input.weight`, ...) and load through
`cortexgraph.interop.load_cornet`.

What the references keep of the published code: CORnet-Z's conv (with bias), ReLU, 3x3/2 max-pool per
area; CORnet-R/RT's block relu(GN(conv1(u + s))) with u = relu(GN(conv_input(input))) or zeros where an
area has no input yet (its conv_input is skipped at step 0), s its previous output or 0; R's areas read
the area below at the same step, RT's at the previous one; the decoder reads IT at the last of `times`.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cortexgraph import build, compile
from cortexgraph.interop import WeightMapError, load_cornet

SIZE = 64  # the specs at 64 pixels (the published code hard-codes 224 only for its zeros' size)
TOL = {"rtol": 1e-9, "atol": 1e-10}


class BlockZ(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2)
        self.nonlin = nn.ReLU()
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x):
        return self.pool(self.nonlin(self.conv(x)))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(512, 1000)

    def forward(self, x):
        return self.linear(x.mean((2, 3)))


class CORnetZ(nn.Module):
    def __init__(self):
        super().__init__()
        self.V1, self.V2 = BlockZ(3, 64, 7, 2), BlockZ(64, 128)
        self.V4, self.IT = BlockZ(128, 256), BlockZ(256, 512)
        self.decoder = Decoder()

    def forward(self, x):
        return self.decoder(self.IT(self.V4(self.V2(self.V1(x)))))


class BlockR(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.cout = cout
        self.conv_input = nn.Conv2d(cin, cout, kernel, stride, kernel // 2)
        self.norm_input = nn.GroupNorm(32, cout)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, cout)

    def forward(self, inp, state, zeros_shape):
        u = torch.zeros(zeros_shape, dtype=self.conv1.weight.dtype) if inp is None else \
            torch.relu(self.norm_input(self.conv_input(inp)))
        s = 0 if state is None else state
        return torch.relu(self.norm1(self.conv1(u + s)))


class CORnetR(nn.Module):
    """`same_step`: CORnet-R (an area reads the one below at the same step); else CORnet-RT."""

    AREAS = ("V1", "V2", "V4", "IT")

    def __init__(self, same_step: bool, times: int = 5):
        super().__init__()
        self.same_step, self.times = same_step, times
        self.V1, self.V2 = BlockR(3, 64, 7, 4), BlockR(64, 128, stride=2)
        self.V4, self.IT = BlockR(128, 256, stride=2), BlockR(256, 512, stride=2)
        self.decoder = Decoder()

    def forward(self, x):
        batch, size = x.shape[0], x.shape[-1] // 4
        shapes = {a: (batch, c, size >> i, size >> i) for i, (a, c) in enumerate(zip(self.AREAS, (64, 128, 256, 512)))}
        out = {}
        for area in self.AREAS:  # step 0: V1 sees the image, the areas above compute from zeros
            out[area] = getattr(self, area)(x if area == "V1" else None, None, shapes[area])
        for _ in range(1, self.times):
            new = {}
            for below, area in zip(("image",) + self.AREAS, self.AREAS):
                source = x if below == "image" else (new if self.same_step else out)[below]
                new[area] = getattr(self, area)(source, out[area], shapes[area])
            out = new
        return self.decoder(out["IT"])


def _published(reference: nn.Module) -> dict:
    """The reference's state dict as CORnet publishes it: through DataParallel, every key under `module.`."""
    return {f"module.{k}": v for k, v in reference.state_dict().items()}


REFERENCES = {"cornet-z": CORnetZ, "cornet-r": lambda: CORnetR(True), "cornet-rt": lambda: CORnetR(False)}
PUBLISHED_PARAMETERS = {"cornet-z": 2_071_656, "cornet-r": 5_208_936, "cornet-rt": 5_208_936}


@pytest.mark.parametrize("name", list(REFERENCES))
def test_the_bundled_cornets_have_the_published_parameter_counts(name):
    assert compile(f"cornet/{name}").size.parameters == PUBLISHED_PARAMETERS[name]
    assert sum(p.numel() for p in REFERENCES[name]().parameters()) == PUBLISHED_PARAMETERS[name]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_each_cornet_computes_what_its_published_code_computes(name, training):
    torch.manual_seed(0)
    reference = REFERENCES[name]()
    with torch.no_grad():  # norms and biases away from their init, so that a misplaced one shows
        for pname, p in reference.named_parameters():
            if "norm" in pname or pname.endswith("bias"):
                p.uniform_(-0.5, 1.5)
    # Loaded in float32 (as published), then both compute in float64: only the order of sums differs.
    ours = load_cornet(name, _published(reference), spec=_at_size(name)).double().train(training)
    reference.double().train(training)
    x = torch.randn(2, 3, SIZE, SIZE, dtype=torch.float64)
    got, want = ours(x), reference(x)
    torch.testing.assert_close(got, want, **TOL)
    got.square().sum().backward()
    want.square().sum().backward()
    names = _names(name, ours)
    for theirs, p in reference.named_parameters():
        torch.testing.assert_close(dict(ours.named_parameters())[names[theirs]].grad, p.grad, **TOL,
                                   msg=f"gradient of {theirs}")


@pytest.mark.parametrize("name", ["cornet-r", "cornet-rt"])
def test_a_cornet_runs_for_more_times_than_it_was_built_for(name):
    # CORnet's `times` is a constructor argument; its weights and (shared) group norms serve every step, so
    # `model(x, steps=6)` is CORnet-R with times=7, nothing per step past the horizon being missing.
    torch.manual_seed(0)
    reference = CORnetR(same_step=name == "cornet-r", times=7).double().eval()
    ours = load_cornet(name, _published(reference), spec=_at_size(name)).double().eval()
    x = torch.randn(2, 3, SIZE, SIZE, dtype=torch.float64)
    torch.testing.assert_close(ours(x, steps=6), reference(x), **TOL)


def _at_size(name: str):
    from cortexgraph.overrides import override
    from cortexgraph.spec import load_spec

    return override(load_spec(f"cornet/{name}"), size=SIZE)


def _names(name: str, model) -> dict[str, str]:
    from cortexgraph.interop.cornet import cornet_r_names, cornet_z_names

    return (cornet_z_names if name == "cornet-z" else cornet_r_names)(model)


def test_cornet_r_sweeps_within_a_step_and_rt_takes_a_step_per_area():
    r, rt = compile("cornet/cornet-r"), compile("cornet/cornet-rt")
    assert r.arrival == {"V1": 0, "V2": 1, "V4": 1, "IT": 1}  # from step 1, one sweep
    assert rt.arrival == {"V1": 0, "V2": 1, "V4": 2, "IT": 3}
    step0 = {u.area: u for u in r.schedule[0]}
    assert set(step0) == {"V1", "V2", "V4", "IT"} and step0["V2"].calls == ()  # from zeros at step 0


def test_load_cornet_names_what_does_not_fit():
    reference = CORnetR(True)
    published = _published(reference)
    published["module.V2.extra.weight"] = published.pop("module.V2.conv1.weight")
    with pytest.raises(WeightMapError) as caught:
        load_cornet("cornet-r", published)
    message = str(caught.value)
    assert "CORnet-R's 'V2.extra.weight' has no counterpart in cornet-r" in message
    assert "cornet-r's 'cells.V2.conv.weight' gets no value from CORnet-R (expected 'V2.conv1.weight')" in message
    with pytest.raises(ValueError, match="unknown CORnet 'cornet-q'; known: cornet-z, cornet-r, cornet-rt, cornet-s"):
        load_cornet("cornet-q", published)


def test_a_cornet_r_checkpoint_file_loads(tmp_path):
    reference = CORnetR(False)
    path = tmp_path / "cornet_rt.pth"
    torch.save({"state_dict": _published(reference), "epoch": 1}, path)  # the layout CORnet's training saves
    model = load_cornet("cornet-rt", path, spec=_at_size("cornet-rt")).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    torch.testing.assert_close(model(x), reference.eval()(x), rtol=1e-4, atol=1e-5)
    assert isinstance(build("cornet/cornet-rt"), nn.Module)
