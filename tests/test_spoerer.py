"""Spoerer et al.'s networks against references written here.

- The BL network of Spoerer et al. (2020), from its published code (cjspoerer/rcnn-sat, bl_net.py; layer
  names are theirs): seven layers RCL_0..RCL_6, each relu(BN_t(BConv(b) + LConv(l))) with a batch norm per
  layer and step (Keras's eps 1e-3 and momentum 0.99), b the layer below at the same step max-pooled 2x2
  (the image for RCL_0), l the layer's own value at the step before (no lateral term at step 0); convs
  without bias; a global average pool and one dense layer, shared across time, at every step.
- B, BL, BT and BLT of Spoerer, McClure & Kriegeskorte (2017), from the paper's equations as we read them
  (no code was published): x_t = lrn(relu(b_t + l_t + t_t + bias)), lrn(a)_c = a_c / (1 + 1e-4 * sum of
  a_c'^2 over the 5 channels around c) ** 0.5, written out here as a sum (not torch's LocalResponseNorm).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cortexgraph import build, compile
from cortexgraph.overrides import override
from cortexgraph.spec import load_spec

LAYERS = [(96, 7), (128, 5), (192, 3), (256, 3), (512, 3), (1024, 3), (2048, 1)]  # (filters, kernel size)
SIZE, STEPS = 64, 2  # the bundled spec at 64 pixels (its top layer 1x1), run for 3 steps (0 to 2)


class BLNet(nn.Module):
    def __init__(self, steps: int = 8, classes: int = 565):
        super().__init__()
        below = 3
        self.bconv, self.lconv, self.bn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for filters, k in LAYERS:
            self.bconv.append(nn.Conv2d(below, filters, k, padding=k // 2, bias=False))
            self.lconv.append(nn.Conv2d(filters, filters, k, padding=k // 2, bias=False))
            # BatchNorm_Layer_{n}_Time_{t}: Keras's defaults, momentum 0.99 (torch: 0.01) and epsilon 1e-3.
            self.bn.append(nn.ModuleList(nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01) for _ in range(steps)))
            below = filters
        self.readout = nn.Linear(LAYERS[-1][0], classes)  # ReadoutDense, one for every step

    def forward(self, x: torch.Tensor, steps: int) -> list[torch.Tensor]:
        image_drive = self.bconv[0](x)  # the image is the same at every step
        previous: list[torch.Tensor] | None = None
        outputs = []
        for t in range(steps):
            now: list[torch.Tensor] = []
            for n in range(len(LAYERS)):
                drive = image_drive if n == 0 else self.bconv[n](F.max_pool2d(now[n - 1], 2))
                if previous is not None:
                    drive = drive + self.lconv[n](previous[n])
                now.append(F.relu(self.bn[n][t](drive)))
            outputs.append(self.readout(now[-1].mean((2, 3))))
            previous = now
        return outputs


def our_names(reference: BLNet) -> dict[str, str]:
    """The reference's parameter and buffer names -> those of specs/blt/spoerer2020-bl.yaml."""
    names = {"readout.weight": "head.fc.weight", "readout.bias": "head.fc.bias",
             "bconv.0.weight": "prenet.0.conv.weight"}
    for n in range(len(LAYERS)):
        if n:
            names[f"bconv.{n}.weight"] = f"edges.RCL_{n - 1}->RCL_{n}.conv.weight"
        names[f"lconv.{n}.weight"] = f"edges.RCL_{n}->RCL_{n}.conv.weight"
        for t in range(len(reference.bn[n])):
            for what in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                names[f"bn.{n}.{t}.{what}"] = f"cells.RCL_{n}.norm.t{t}.{what}"
    return {theirs: names[theirs] for theirs in reference.state_dict()}


def test_spoerer_bl_computes_what_its_published_code_does():
    torch.manual_seed(0)
    reference = BLNet()
    with torch.no_grad():  # norms away from their init, so that a misplaced one shows
        for name, p in reference.named_parameters():
            if name.startswith("bn."):
                p.uniform_(0.5, 1.5) if name.endswith("weight") else p.uniform_(-0.5, 0.5)
    model = build(override(load_spec("blt/spoerer2020-bl"), size=SIZE))
    names = our_names(reference)
    assert set(names.values()) == set(model.state_dict())  # every weight of ours comes from the reference
    model.load_state_dict({names[k]: v for k, v in reference.state_dict().items()})
    model.double().train()
    reference.double().train()
    x = torch.randn(2, 3, SIZE, SIZE, dtype=torch.float64)
    got = model(x, steps=STEPS, readout="all")
    want = reference(x, STEPS + 1)
    assert list(got) == list(range(STEPS + 1))
    for t in got:
        torch.testing.assert_close(got[t], want[t], rtol=1e-9, atol=1e-10, msg=f"step {t}")
    ours = model.state_dict()
    for theirs, buffer in reference.named_buffers():  # running statistics, at Keras's momentum
        torch.testing.assert_close(ours[names[theirs]], buffer, rtol=1e-9, atol=1e-12, msg=theirs)
    sum(v.square().sum() for v in got.values()).backward()
    sum(v.square().sum() for v in want).backward()
    grads = dict(model.named_parameters())
    for theirs, p in reference.named_parameters():
        if p.grad is not None:  # the norms of steps not run have none, in both
            torch.testing.assert_close(grads[names[theirs]].grad, p.grad, rtol=1e-9, atol=1e-10, msg=theirs)
    model.eval()
    reference.eval()
    with torch.no_grad():
        got, want = model(x, steps=STEPS, readout="all"), reference(x, STEPS + 1)
    for t in got:
        torch.testing.assert_close(got[t], want[t], rtol=1e-9, atol=1e-10, msg=f"eval, step {t}")


def test_spoerer_bl_has_the_published_size_and_reads_out_at_every_step():
    plan = compile("blt/spoerer2020-bl")
    # bl_net.py at 565 classes and 8 steps: convs 26,753,824, norms 8 x 8,512, the dense layer 1,157,685.
    assert plan.size.parameters == 27_979_605 == sum(p.numel() for p in BLNet().parameters())
    assert plan.readout_steps == tuple(range(8))
    assert set(plan.arrival.values()) == {0}  # a whole bottom-up sweep at every step
    assert plan.shapes["RCL_6"] == (2048, 2, 2)


class Spoerer2017(nn.Module):
    def __init__(self, lateral: bool, topdown: bool):
        super().__init__()
        self.bottom_up = nn.ModuleList([nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1)])
        self.lateral = nn.ModuleList(nn.Conv2d(32, 32, 3, padding=1, bias=False) for _ in range(2)) if lateral else None
        # L2 (16x16) to L1 (32x32): a 3x3 transposed conv of stride 2
        self.top_down = (nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1, bias=False)
                         if topdown else None)
        self.readout = nn.Linear(32, 10)

    @staticmethod
    def lrn(a: torch.Tensor) -> torch.Tensor:
        squares = F.pad(a.square(), (0, 0, 0, 0, 2, 2))  # channels c-2..c+2, zeros past the ends
        window = sum(squares[:, i:i + a.shape[1]] for i in range(5))
        return a / (1 + 1e-4 * window) ** 0.5

    def forward(self, x: torch.Tensor, steps: int) -> list[torch.Tensor]:
        previous = None
        outputs = []
        for _ in range(steps):
            drive = self.bottom_up[0](x)
            if previous is not None and self.lateral is not None:
                drive = drive + self.lateral[0](previous[0])
            if previous is not None and self.top_down is not None:
                drive = drive + self.top_down(previous[1])
            l1 = self.lrn(F.relu(drive))
            drive = self.bottom_up[1](F.max_pool2d(l1, 2))
            if previous is not None and self.lateral is not None:
                drive = drive + self.lateral[1](previous[1])
            l2 = self.lrn(F.relu(drive))
            outputs.append(self.readout(l2.amax((2, 3))))
            previous = (l1, l2)
        return outputs


SPOERER_2017_NAMES = {  # the reference's names -> those of specs/blt/spoerer2017-*.yaml
    "bottom_up.0.weight": "prenet.0.conv.weight", "bottom_up.0.bias": "prenet.0.conv.bias",
    "bottom_up.1.weight": "edges.L1->L2.conv.weight", "bottom_up.1.bias": "edges.L1->L2.conv.bias",
    "lateral.0.weight": "edges.L1->L1.conv.weight", "lateral.1.weight": "edges.L2->L2.conv.weight",
    "top_down.weight": "edges.L2->L1.conv.weight", "readout.weight": "head.fc.weight", "readout.bias": "head.fc.bias"}
SPOERER_2017 = {"b": (False, False, 9_898), "bl": (True, False, 28_330), "bt": (False, True, 19_114),
                "blt": (True, True, 37_546)}


@pytest.mark.parametrize("variant", list(SPOERER_2017))
def test_spoerer_2017_networks_compute_their_equations(variant):
    torch.manual_seed(0)
    lateral, topdown, size = SPOERER_2017[variant]
    reference = Spoerer2017(lateral, topdown)
    names = SPOERER_2017_NAMES
    model = build(f"blt/spoerer2017-{variant}")
    assert model.plan.size.parameters == size == sum(p.numel() for p in reference.parameters())
    assert {names[k] for k in reference.state_dict()} == set(model.state_dict())
    model.load_state_dict({names[k]: v for k, v in reference.state_dict().items()})
    model.double()
    reference.double()
    x = torch.rand(3, 1, 32, 32, dtype=torch.float64) * 40  # large enough that the normalisation matters
    got = model(x, readout="all")
    want = reference(x, 4)
    assert list(got) == [0, 1, 2, 3]
    for t in got:
        torch.testing.assert_close(got[t], want[t], rtol=1e-9, atol=1e-10, msg=f"step {t}")
    torch.testing.assert_close(model(x), want[0 if variant == "b" else 3], rtol=1e-9, atol=1e-10)
    sum(v.square().sum() for v in got.values()).backward()
    sum(v.square().sum() for v in want).backward()
    grads = dict(model.named_parameters())
    for theirs, p in reference.named_parameters():
        torch.testing.assert_close(grads[names[theirs]].grad, p.grad, rtol=1e-9, atol=1e-10, msg=theirs)
