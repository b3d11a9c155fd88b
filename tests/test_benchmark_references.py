"""The hand-written loops the benchmarks time cortexgraph against compute what the models compute (else a
ratio would compare different work)."""

import sys
from pathlib import Path

import pytest
import torch

from cortexgraph import build

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from common import HandWrittenLoop, StreamLoop  # noqa: E402


@pytest.mark.parametrize("cell", ["gru", "lstm", "rgc", "leaky"])
def test_the_stream_loops_compute_the_streams(cell):
    torch.manual_seed(0)
    model = build(f"convrnn/{cell}-stream", size=8).double()
    with torch.no_grad():  # biases not at their init's zeros: at step 0 the areas above V1 start from relu(bias)
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
    loop = StreamLoop(model)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    for train in (False, True):
        model.train(train)
        torch.testing.assert_close(loop(x), model(x), rtol=1e-12, atol=1e-12)
    assert len(loop.updates) == len(model.plan.updates)


def test_the_hand_written_srn1_loop_computes_the_spec():
    model = build("liao2016/srn1-cifar", size=8).double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(HandWrittenLoop(model)(x), model(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", ["liao2016/frnn4-cifar", "liao2016/srn1-cifar"])
def test_the_naive_unrolling_computes_the_spec_on_the_inputs_device_and_dtype(spec):
    """Every area at every step (benchmarks/pruning.py, a contender in gpu.py): its zeros for silent areas
    are made like the input (float64 here, as on a GPU they must be on it), and in eval mode, where a
    norm maps zeros to zeros, it computes what the pruned Plan computes."""
    from pruning import naive_forward

    model = build(spec, size=8).double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    steps = model.spec.steps
    torch.testing.assert_close(naive_forward(model, x, steps), model(x), rtol=1e-12, atol=1e-12)
