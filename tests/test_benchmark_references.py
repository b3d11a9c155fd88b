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
