"""`cortexgraph compile` and the summary: shapes, parameters, FLOPs, arrival, schedule, export."""

import json

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cortexgraph import build
from cortexgraph.bundled import bundled_specs
from cortexgraph.cli import main
from cortexgraph.summary import summarize

from .conftest import TESTS


def test_resnet18_flops_and_parameters_match_torchvision():
    summary = summarize(build("torchvision/resnet18"))
    reference = torchvision.models.resnet18().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        reference(torch.randn(1, 3, 224, 224))
    assert summary["flops"] == counter.get_total_flops()
    assert summary["params"] == summary["params_unshared"] == sum(p.numel() for p in reference.parameters())


def test_shared_summary_shows_the_unshared_equivalent():
    shared = summarize(build("torchvision/resnet18", share="time"))
    unshared = summarize(build("torchvision/resnet18"))
    assert shared["params"] < unshared["params"]
    # sharing the two S1->S1 blocks (and the others) saves one block's weights per extra step
    assert shared["params_unshared"] == unshared["params"] and shared["flops"] == unshared["flops"]


def test_summary_per_area():
    summary = summarize(build("liao2016/frnn4-imagenet"))
    it = summary["areas"]["IT"]
    assert it["shape"] == [512, 7, 7] and it["arrival"] == 3
    assert sorted(it["flops"]) == [3, 4, 5, 6, 7, 8] and it["params"] > 0
    assert summary["calls"] == 51 and summary["naive_calls"] == 81


@pytest.mark.parametrize("name", sorted(bundled_specs()))
def test_every_bundled_spec_builds_and_runs(name):
    model = build(name).to("meta")  # the meta device checks shapes without arithmetic
    spec = model.spec
    out = model(torch.empty(2, spec.input.channels, *spec.input.size, device="meta"))
    assert out.shape == (2, spec.readout.head.classes)


def test_compile_prints_the_summary(capsys):
    assert main(["compile", "cornet/cornet-s"]) == 0
    out = capsys.readouterr().out
    assert "cornet-s: input 3x224x224, 8 steps, readout IT at step 8" in out
    assert "parameters: 53,416,616" in out
    assert "step   4: V4 <- V4->V4" in out
    assert out.splitlines()[2].split() == ["shape", "cell", "params", "FLOPs/update", "updates", "arrival"]
    assert "edge calls run; silent and unread work is pruned)" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["V4"].split()[1:5] == ["256x14x14", "sum", "(linear)", "10.08M"]


def test_compile_json_and_export(tmp_path, capsys):
    target = tmp_path / "model.pt2"
    spec = TESTS / "specs" / "valid" / "matrix.yaml"
    assert main(["compile", str(spec), "--json", "--export", str(target), "--steps", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4 and summary["export"]["max_difference"] <= 1e-5
    assert torch.export.load(target).module()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_compile_of_a_bad_spec_exits_2(capsys):
    bad = TESTS / "specs" / "invalid" / "unknown-op.yaml"
    assert main(["compile", str(bad)]) == 2
    assert "did you mean 'residual'?" in capsys.readouterr().err


def test_the_bundled_specs_table_is_current():
    from cortexgraph.summary import specs_table

    readme = (TESTS.parent / "specs" / "README.md").read_text()
    start = readme.index("-->\n") + 4
    table = readme[start:readme.index("\n<!-- end of table -->")]
    assert table == specs_table(bundled_specs()), "regenerate with: cortexgraph specs --table"
