"""The BLT family against a reference written here from the published structure of the Kietzmann lab's
PyTorch BLT (BLT_net_64, CCN 2023; the module names are theirs): a retina conv, V1, V2, V4 and IT, each
relu(LayerNorm([C, H, W])(drive)), the bottom-up drive a max-pool 2x2 and a 3x3 conv of the area below at
the same step, lateral 3x3 convs and top-down 3x3 transposed convs (stride 2, padding 1, output padding
1) of the previous step, combined as b + l + t or b * (1 + l + t); V1 takes neither; a pooled top area
with a linear lateral and its own layer norm; a readout at every step.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cortexgraph import build, compile
from cortexgraph.overrides import override
from cortexgraph.spec import load_spec

SIZE, STEPS = 32, 3  # the bundled specs at 32 pixels, run for 4 steps (0 to 3)
AREAS = [("v1", "V1", 32, 64), ("v2", "V2", 64, 128), ("v4", "V4", 128, 256), ("it", "IT", 256, 512)]


class BLTConv(nn.Module):
    def __init__(self, cin: int, cout: int, pool: bool, lateral: bool, topdown: bool):
        super().__init__()
        self.pool = pool
        self.bottom_up = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.lateral = nn.Conv2d(cout, cout, 3, padding=1, bias=False) if lateral else None
        self.top_down = (nn.ConvTranspose2d(2 * cout, cout, 3, stride=2, padding=1, output_padding=1, bias=False)
                         if topdown else None)

    def forward(self, below, own, above, multiplicative: bool):
        b = self.bottom_up(F.max_pool2d(below, 2, 2) if self.pool else below)
        extra = [f(x) for f, x in ((self.lateral, own), (self.top_down, above)) if f is not None and x is not None]
        if not extra:
            return b
        return b * (1 + sum(extra)) if multiplicative else b + sum(extra)


class BLTNet(nn.Module):
    def __init__(self, lateral: bool, topdown: bool, multiplicative: bool, size: int = SIZE):
        super().__init__()
        self.multiplicative = multiplicative
        self.retina = nn.Conv2d(3, 32, 3, padding=1)
        for i, (name, _, cin, cout) in enumerate(AREAS):
            # V1 takes no lateral or top-down input (the published code holds such weights but never uses them).
            setattr(self, name, BLTConv(cin, cout, pool=i > 0, lateral=lateral and i > 0,
                                        topdown=topdown and 0 < i < 3))
            setattr(self, f"{name}_ln", nn.LayerNorm([cout, size >> i, size >> i]))
        self.gap_lateral = nn.Linear(512, 512, bias=False) if lateral or topdown else None
        self.gap_ln = nn.LayerNorm([512])
        self.readout = nn.Linear(512, 100)

    def forward(self, x, timesteps: int):
        r = torch.relu(self.retina(x))
        prev: dict = {}
        outs = []
        for _ in range(timesteps):
            now = {}
            below = r
            for i, (name, _, _, _) in enumerate(AREAS):
                above = prev.get(AREAS[i + 1][0]) if i + 1 < len(AREAS) else None
                drive = getattr(self, name)(below, prev.get(name), above, self.multiplicative)
                now[name] = below = torch.relu(getattr(self, f"{name}_ln")(drive))
            pooled = now["it"].mean((2, 3))
            g = prev.get("gap")
            if g is not None and self.gap_lateral is not None:
                lat = self.gap_lateral(g)
                pooled = pooled * (1 + lat) if self.multiplicative else pooled + lat
            now["gap"] = torch.relu(self.gap_ln(pooled))
            outs.append(self.readout(now["gap"]))
            prev = now
        return outs


def our_names(reference: BLTNet) -> dict[str, str]:
    """The reference's parameter names -> those of specs/blt/*.yaml."""
    names = {"retina.weight": "prenet.0.conv.weight", "retina.bias": "prenet.0.conv.bias",
             "readout.weight": "head.fc.weight", "readout.bias": "head.fc.bias",
             "gap_ln.weight": "cells.GAP.norm.weight", "gap_ln.bias": "cells.GAP.norm.bias",
             "gap_lateral.weight": "edges.GAP->GAP.conv.weight"}
    below = "input"
    for i, (name, area, _, _) in enumerate(AREAS):
        names[f"{name}.bottom_up.weight"] = f"edges.{below}->{area}.conv.weight"
        names[f"{name}.lateral.weight"] = f"edges.{area}->{area}.conv.weight"
        if i + 1 < len(AREAS):
            names[f"{name}.top_down.weight"] = f"edges.{AREAS[i + 1][1]}->{area}.conv.weight"
        names[f"{name}_ln.weight"] = f"cells.{area}.norm.weight"
        names[f"{name}_ln.bias"] = f"cells.{area}.norm.bias"
        below = area
    return {theirs: names[theirs] for theirs, _ in reference.named_parameters()}


VARIANTS = {"blt/blt": (True, True, False), "blt/bl": (True, False, False), "blt/bt": (False, True, False),
            "blt/b": (False, False, False), "blt/blt-multiplicative": (True, True, True)}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_blt_network_computes_what_the_published_structure_does(name):
    torch.manual_seed(0)
    reference = BLTNet(*VARIANTS[name])
    with torch.no_grad():  # layer norms away from their init, so that a misplaced one shows
        for pname, p in reference.named_parameters():
            if "_ln" in pname:
                p.uniform_(0.5, 1.5) if pname.endswith("weight") else p.uniform_(-0.5, 0.5)
    model = build(override(load_spec(name), size=SIZE))
    names = our_names(reference)
    ours = model.state_dict()
    assert set(names.values()) == set(ours)  # every weight of ours comes from the reference, and only those
    model.load_state_dict({names[k]: v.reshape(ours[names[k]].shape) for k, v in reference.state_dict().items()})
    model.double().train()
    reference.double().train()
    x = torch.randn(2, 3, SIZE, SIZE, dtype=torch.float64)
    got = model(x, steps=STEPS, readout="all")
    want = reference(x, STEPS + 1)
    assert list(got) == list(range(STEPS + 1))
    for t in got:
        torch.testing.assert_close(got[t], want[t], rtol=1e-9, atol=1e-10, msg=f"step {t}")
    sum(v.square().sum() for v in got.values()).backward()
    sum(v.square().sum() for v in want).backward()
    grads = dict(model.named_parameters())
    for theirs, p in reference.named_parameters():
        mine = grads[names[theirs]].grad
        torch.testing.assert_close(mine, p.grad.reshape(mine.shape), rtol=1e-9, atol=1e-10, msg=theirs)


def test_the_blt_networks_hold_the_published_weights_less_those_v1_never_uses():
    # BLT_net_64 with every connection and a classifier bias: 7,546,852 parameters, of which V1's lateral
    # (64 x 64 x 3 x 3) and top-down (128 x 64 x 3 x 3) weights are never used.
    assert compile("blt/blt").size.parameters == 7_546_852 - 36_864 - 73_728
    assert compile("blt/blt-multiplicative").size.parameters == compile("blt/blt").size.parameters
    assert compile("blt/bl").size.parameters == 5_998_564 - 36_864  # no top-down convs
    assert sum(p.numel() for p in BLTNet(True, True, False, size=64).parameters()) == 7_546_852 - 36_864 - 73_728


def test_blt_sweeps_bottom_up_within_a_step_and_reads_out_at_every_step():
    plan = compile("blt/blt")
    assert plan.arrival == {"V1": 0, "V2": 0, "V4": 0, "IT": 0, "GAP": 0}
    assert plan.readout_steps == tuple(range(10))
    assert {c.edge.name for u in plan.schedule[0] for c in u.calls} == {
        "input->V1", "V1->V2", "V2->V4", "V4->IT", "IT->GAP"}  # step 0: the bottom-up sweep only
