"""The BLT family against a reference written here from the published code of the Kietzmann lab's BLT
(github.com/KietzmannLab/BLT-pytorch-CCN23, `BLT_train/models/BLT_net.py`), with its module names, so
that its state dicts have the published layout:

- `BLT_net_64.__init__` (lines 8-51): a retina conv (3x3, bias), then `v1`, `v2`, `v4`, `it`, each a
  `BLT_Conv` followed by a layer norm over C x H x W (`norm_type: LN`, convs without bias), and `gap`, a
  `BLT_GAP` followed by a layer norm over its 512 channels; `lateral_connections` and
  `topdown_connections` give the four conv areas their laterals and top-downs (IT no top-down, line
  39), and `LT_position: last` switches both off for all four (lines 15-17), while `gap` has its
  lateral wherever `lateral_connections` is on (line 45); a linear readout whose bias is
  `classifier_bias`.
- `BLT_net_64.forward` (lines 53-70): V1 reads only the retina (its lateral and top-down weights, made
  by the constructor, are never used); step 0 runs the bottom-up sweep alone; at t > 0 each area also
  reads its own value and the area above at t - 1; each step returns log(clamp(softmax(readout),
  1e-10, 1)).
- `BLT_Conv` (lines 135-188): max-pool 2x2 (not V1), a 'same' conv, then b + l + t, b + l, b + t or b
  (`LT_interaction: additive`), or b * (1 + l + t) and so on otherwise; the top-down a transposed conv
  of stride 2, padding (k - 1) / 2 and output padding 1 from twice the channels (line 149).
- `BLT_GAP` (lines 190-217): an average pool over the whole map, plus (or times 1 +) a linear lateral
  of its previous value.
- `train_net.py` (lines 93-135): the training loss is `nn.NLLLoss` of each step's output, summed over
  the steps; its flags default to `classifier_bias` 0 and 10 steps.

Each bundled spec is compared at the published size (64 px) and number of steps (10), in float64,
in training mode, every step's output and every weight's and the image's gradient.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cortexgraph import compile
from cortexgraph.interop import WeightMapError, load_blt
from cortexgraph.interop.blt import blt_names

SIZE, STEPS = 64, 10  # the published image size and number of steps
CHANNELS = [("v1", 32, 64), ("v2", 64, 128), ("v4", 128, 256), ("it", 256, 512)]


class BLTConv(nn.Module):
    """`BLT_Conv`: the drive of one conv area from the area below, its own value and the area above."""

    def __init__(self, cin: int, cout: int, lateral: bool, topdown: bool, interaction: str, pool_input: bool):
        super().__init__()
        self.pool_input, self.interaction = pool_input, interaction
        self.bottom_up = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        if lateral:
            self.lateral = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        if topdown:
            self.top_down = nn.ConvTranspose2d(2 * cout, cout, 3, stride=2, padding=1, output_padding=1, bias=False)

    def forward(self, below, own=None, above=None):
        b = self.bottom_up(F.max_pool2d(below, 2, 2) if self.pool_input else below)
        extra = [getattr(self, name)(x) for name, x in (("lateral", own), ("top_down", above))
                 if hasattr(self, name) and x is not None]
        if not extra:
            return b
        return b + sum(extra) if self.interaction == "additive" else b * (1 + sum(extra))


class BLTGAP(nn.Module):
    """`BLT_GAP`: the pooled top area's drive, with a linear lateral of its previous value."""

    def __init__(self, lateral: bool, interaction: str):
        super().__init__()
        self.interaction = interaction
        if lateral:
            self.lateral = nn.Linear(512, 512, bias=False)

    def forward(self, below, own=None):
        b = below.mean((2, 3))
        if not hasattr(self, "lateral") or own is None:
            return b
        lat = self.lateral(own)
        return b + lat if self.interaction == "additive" else b * (1 + lat)


class BLTNet64(nn.Module):
    """`BLT_net_64` with `norm_type: LN`, its flags named as the published constructor names them."""

    def __init__(self, lateral_connections: bool, topdown_connections: bool, LT_interaction: str = "additive",
                 timesteps: int = STEPS, LT_position: str = "all", classifier_bias: bool = False,
                 size: int = SIZE):
        super().__init__()
        conv_areas = LT_position != "last"
        self.retina = nn.Conv2d(3, 32, 3, padding=1)
        for i, (name, cin, cout) in enumerate(CHANNELS):
            setattr(self, name, BLTConv(cin, cout, lateral_connections and conv_areas,
                                        topdown_connections and conv_areas and name != "it", LT_interaction,
                                        pool_input=i > 0))
            setattr(self, f"{name}_ln", nn.LayerNorm([cout, size >> i, size >> i]))
        self.gap = BLTGAP(lateral_connections, LT_interaction)
        self.gap_ln = nn.LayerNorm([512])
        self.readout = nn.Linear(512, 100, bias=classifier_bias)
        self.timesteps = timesteps

    def logits(self, x) -> list:
        """Each step's readout before the published log(clamp(softmax)): what cortexgraph returns."""
        retina = torch.relu(self.retina(x))
        prev: dict = {}
        outs = []
        for _ in range(self.timesteps):
            now: dict = {"v1": torch.relu(self.v1_ln(self.v1(retina)))}  # V1: the retina only
            for (below, _, _), (name, _, _), above in zip(CHANNELS, CHANNELS[1:], ["v4", "it", None]):
                drive = getattr(self, name)(now[below], prev.get(name), prev.get(above))
                now[name] = torch.relu(getattr(self, f"{name}_ln")(drive))
            now["gap"] = torch.relu(self.gap_ln(self.gap(now["it"], prev.get("gap"))))
            outs.append(self.readout(now["gap"]))
            prev = now
        return outs

    def forward(self, x) -> list:
        return [torch.log(torch.clamp(F.softmax(z, dim=1), 1e-10, 1.0)) for z in self.logits(x)]

    def objective(self, x, labels):
        """`train_net.py`'s training loss: the NLL of each step's output, summed over the steps."""
        return sum(F.nll_loss(out, labels) for out in self(x))


# each bundled spec, the published flags it claims
PUBLISHED = {
    "blt/blt": dict(lateral_connections=True, topdown_connections=True),
    "blt/bl": dict(lateral_connections=True, topdown_connections=False),
    "blt/bt": dict(lateral_connections=False, topdown_connections=True),
    "blt/b": dict(lateral_connections=False, topdown_connections=False),
    "blt/blt-multiplicative": dict(lateral_connections=True, topdown_connections=True,
                                   LT_interaction="multiplicative"),
    "blt/bl-last": dict(lateral_connections=True, topdown_connections=False, LT_position="last"),
}


def published_blt(name: str, seed: int = 0, **changes) -> BLTNet64:
    torch.manual_seed(seed)
    reference = BLTNet64(**(PUBLISHED[name] | changes))
    with torch.no_grad():  # layer norms away from their init, so that a misplaced one shows
        for pname, p in reference.named_parameters():
            if "_ln" in pname:
                p.uniform_(0.5, 1.5) if pname.endswith("weight") else p.uniform_(-0.5, 0.5)
    return reference


def load_published(name: str, reference: BLTNet64):
    """The bundled spec with the reference's weights, through `load_blt` (which warns of V1's unused ones)."""
    unused = "v1.lateral.weight" in reference.state_dict() or "v1.top_down.weight" in reference.state_dict()
    warned = pytest.warns(UserWarning, match="which BLT_net_64 holds but its forward never uses")
    with warned if unused else contextlib.nullcontext():
        return load_blt(name.removeprefix("blt/"), reference.state_dict())


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_each_blt_network_computes_what_the_published_code_does(name):
    reference = published_blt(name).double().train()
    model = load_published(name, reference).double().train()
    x = torch.randn(2, 3, SIZE, SIZE, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    got, want = model(x, readout="all"), reference.logits(x_ref)
    assert list(got) == list(range(STEPS))
    for t in got:
        torch.testing.assert_close(got[t], want[t], rtol=1e-9, atol=1e-10, msg=f"step {t}")
    sum((t + 1) * v.square().sum() for t, v in got.items()).backward()
    sum((t + 1) * v.square().sum() for t, v in enumerate(want)).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-10, msg="the image's gradient")
    ours = dict(model.named_parameters())
    for theirs, mine in blt_names(reference.state_dict()).items():
        grad = ours[mine].grad
        torch.testing.assert_close(grad, reference.get_parameter(theirs).grad.reshape(grad.shape),
                                   rtol=1e-9, atol=1e-10, msg=theirs)
    unused = [n for n, p in reference.named_parameters() if p.grad is None]
    assert unused == [n for n in ("v1.lateral.weight", "v1.top_down.weight") if n in reference.state_dict()]


def test_training_minimises_the_published_objective():
    # train_net.py sums NLLLoss over the 10 steps' log(clamp(softmax)); the clamp binds only where the
    # label's probability is below 1e-10 (not in this batch), so the two agree, value and gradient.
    reference = published_blt("blt/blt").double().train()
    model = load_published("blt/blt", reference).double().train()
    x, labels = torch.randn(4, 3, SIZE, SIZE, dtype=torch.float64), torch.tensor([3, 14, 15, 92])
    ours = model.loss(model(x, readout=model.loss_readout), labels)
    theirs = reference.objective(x, labels)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)
    assert float(theirs.detach()) > 40  # ten steps' losses of about log(100) each, summed (the mean would be 4.6)
    ours.backward()
    theirs.backward()
    grads = dict(model.named_parameters())
    for name, mine in blt_names(reference.state_dict()).items():
        torch.testing.assert_close(grads[mine].grad, reference.get_parameter(name).grad.reshape(grads[mine].shape),
                                   rtol=1e-9, atol=1e-12, msg=name)


def test_a_checkpoint_trained_with_a_classifier_bias_loads_with_one():
    reference = published_blt("blt/bl", classifier_bias=True)
    model = load_published("blt/bl", reference)
    assert model.spec.readout.head.bias
    torch.testing.assert_close(model.head.fc.bias, reference.readout.bias)


def test_load_blt_names_what_does_not_fit():
    reference = published_blt("blt/blt")
    does_not_have = r"'v2.lateral.weight' maps to 'edges.V2->V2.conv.weight', which blt-bt does not have"
    with pytest.raises(WeightMapError, match=does_not_have), pytest.warns(UserWarning):
        load_blt("bt", reference.state_dict())
    with pytest.raises(ValueError, match=r"unknown BLT 'blt-64'; known: blt, bl, bt, b, blt-multiplicative"):
        load_blt("blt-64", {})


def test_the_blt_networks_hold_the_published_weights_less_those_v1_never_uses():
    for name, flags in PUBLISHED.items():
        reference = BLTNet64(**flags)
        published = sum(p.numel() for p in reference.parameters())
        unused = sum(p.numel() for n, p in reference.named_parameters() if n.startswith(("v1.lateral", "v1.top_down")))
        assert compile(name).size.parameters == published - unused, name
    # the published counts (train_net.py prints them): BLT without a classifier bias, BT, B
    assert sum(p.numel() for p in BLTNet64(True, True).parameters()) == 7_546_752
    assert compile("blt/bt").size.parameters == 4_077_440  # no lateral at GAP: the published BT's
    assert compile("blt/b").size.parameters == 2_602_880


def test_blt_sweeps_bottom_up_within_a_step_and_reads_out_at_every_step():
    plan = compile("blt/blt")
    assert plan.arrival == {"V1": 0, "V2": 0, "V4": 0, "IT": 0, "GAP": 0}
    assert plan.readout_steps == tuple(range(10))
    assert {c.edge.name for u in plan.schedule[0] for c in u.calls} == {
        "input->V1", "V1->V2", "V2->V4", "V4->IT", "IT->GAP"}  # step 0: the bottom-up sweep only
