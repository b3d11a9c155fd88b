"""The largest difference between each bundled model and the reference its test checks it against, in
float32 at the bundled sizes (Spoerer et al. 2020 at 64 px): outputs and gradients, each with the largest
magnitude among the reference's values (`python tests/reference_differences.py`).

The tests check the same models in float64 to 1e-9; this prints what a user sees in float32.
"""

import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cortexgraph import build  # noqa: E402
from cortexgraph.interop import load_cornet, load_pytorchtnn  # noqa: E402
from cortexgraph.interop.blt import blt_names  # noqa: E402
from cortexgraph.interop.pytorchtnn import pytorchtnn_weights  # noqa: E402
from tests import test_convrnns  # noqa: E402
from tests.test_blt import PUBLISHED, load_published, published_blt  # noqa: E402
from tests.test_convrnns import leaky_stream  # noqa: E402
from tests.test_cornet_family import REFERENCES, _names, _published  # noqa: E402
from tests.test_pytorchtnn import _randomized, stream  # noqa: E402
from tests.test_spoerer import SPOERER_2017, SPOERER_2017_NAMES, BLNet, Spoerer2017  # noqa: E402
from tests.test_spoerer import our_names as spoerer_names  # noqa: E402


def largest(pairs) -> tuple[float, float]:
    """The largest absolute difference, and the largest magnitude of the reference's values it is among."""
    pairs = list(pairs)
    return max(float((a - b).abs().max()) for a, b in pairs), max(float(b.abs().max()) for _, b in pairs)


def main() -> None:
    torch.manual_seed(0)
    for name, make in REFERENCES.items():
        reference = make().train()
        ours = load_cornet(name, _published(reference)).train()
        x = torch.randn(2, 3, 224, 224)
        got, want = ours(x), reference(x)
        got.square().sum().backward()
        want.square().sum().backward()
        mine, names = dict(ours.named_parameters()), _names(name, ours)
        grads = largest((mine[names[k]].grad, p.grad) for k, p in reference.named_parameters())
        report(f"cornet/{name}", ours, largest([(got.detach(), want.detach())]), grads,
               "224 px, " + ("one sweep" if name == "cornet-z" else "5 steps"))
    for name in PUBLISHED:
        reference = published_blt(name).train()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # V1's unused weights
            model = load_published(name, reference).train()
        names = blt_names(reference.state_dict())
        x = torch.randn(2, 3, 64, 64)
        got, want = model(x, readout="all"), reference.logits(x)
        outs = largest((got[t].detach(), want[t].detach()) for t in got)
        sum(v.square().sum() for v in got.values()).backward()
        sum(v.square().sum() for v in want).backward()
        mine = dict(model.named_parameters())
        grads = largest((mine[ours].grad, reference.get_parameter(theirs).grad.reshape(mine[ours].shape))
                        for theirs, ours in names.items())
        report(name, model, outs, grads, "64 px, 10 steps, every step's logits")
    reference = BLNet().train()
    model = build("blt/spoerer2020-bl", size=64).train()  # 128 px costs 167 GFLOPs an image
    names = spoerer_names(reference)
    model.load_state_dict({names[k]: v for k, v in reference.state_dict().items()})
    x = torch.randn(2, 3, 64, 64)
    got, want = model(x, readout="all"), reference(x, 8)
    outs = largest((got[t].detach(), want[t].detach()) for t in got)
    sum(v.square().sum() for v in got.values()).backward()
    sum(v.square().sum() for v in want).backward()
    mine = dict(model.named_parameters())
    report("blt/spoerer2020-bl", model, outs, largest((mine[names[k]].grad, p.grad)
                                                      for k, p in reference.named_parameters()),
           "64 px, 8 steps, every step's logits")
    for variant, (lateral, topdown, _) in SPOERER_2017.items():
        reference = Spoerer2017(lateral, topdown)
        model = build(f"blt/spoerer2017-{variant}")
        names = SPOERER_2017_NAMES
        model.load_state_dict({names[k]: v for k, v in reference.state_dict().items()})
        x = torch.rand(2, 1, 32, 32) * 40
        got, want = model(x, readout="all"), reference(x, 4)
        outs = largest((got[t].detach(), want[t].detach()) for t in got)
        sum(v.square().sum() for v in got.values()).backward()
        sum(v.square().sum() for v in want).backward()
        mine = dict(model.named_parameters())
        report(f"blt/spoerer2017-{variant}", model, outs,
               largest((mine[names[k]].grad, p.grad) for k, p in reference.named_parameters()),
               "32 px, 4 steps, every step's logits")
    for cell in ("gru", "lstm", "rgc"):
        reference = _randomized(stream(cell)).float()
        model = load_pytorchtnn(f"convrnn/{cell}-stream", reference.state_dict()).train()
        x = torch.randn(2, 3, 32, 32)
        got, want = model(x, readout="all"), reference(x, 9)
        outs = largest((got[t].detach(), want[t].detach()) for t in got)
        sum(v.square().sum() for v in got.values()).backward()
        sum(v.square().sum() for v in want).backward()
        grads, names = pytorchtnn_weights(model, {k: p.grad for k, p in reference.named_parameters()})
        mine = dict(model.named_parameters())
        report(f"convrnn/{cell}-stream", model, outs, largest((mine[names[k]].grad, g) for k, g in grads.items()),
               "32 px, 9 steps, every step's logits")
    test_convrnns.STEPS = 8  # the bundled spec's own steps
    model = build("convrnn/leaky-stream").train()
    params = dict(model.named_parameters())
    w = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    x = torch.randn(2, 3, 32, 32)
    got, want = model(x), leaky_stream(w, x)
    got.square().sum().backward()
    want.square().sum().backward()
    report("convrnn/leaky-stream", model, largest([(got.detach(), want.detach())]),
           largest((p.grad, w[k].grad) for k, p in params.items()), "32 px, 8 steps")


def report(name: str, model: torch.nn.Module, outputs: tuple[float, float], grads: tuple[float, float],
           how: str) -> None:
    print(f"{name:24s} {sum(p.numel() for p in model.parameters()):>10,} parameters  outputs {outputs[0]:.1e} "
          f"(of {outputs[1]:.0e})  gradients {grads[0]:.1e} (of {grads[1]:.0e})  ({how})")


if __name__ == "__main__":
    main()
