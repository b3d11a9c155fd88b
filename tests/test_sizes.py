"""A model's size is known before it is built: counted exactly, reported by validate, refused above a limit."""

import os

import pytest
import torch
from torch import nn

import cortexgraph.model as model_module
from cortexgraph import Limits, SpecError, build, register_op
from cortexgraph.bundled import bundled_specs
from cortexgraph.cli import main
from cortexgraph.ops.layers import OpContext
from cortexgraph.ops.norm_spec import NormSpec
from cortexgraph.ops.registry import lookup, unregister_op
from cortexgraph.sizes import weights

IN = (4, 8, 8)


@pytest.mark.parametrize("op,target,params", [
    ("identity", (4, 8, 8), {}), ("conv", (6, 8, 8), {}), ("conv", (6, 4, 4), {"kernel": 5, "bias": True}),
    ("down", (6, 4, 4), {"kernel": 1}), ("up", (6, 16, 16), {}), ("up", (6, 32, 32), {"mode": "transpose"}),
    ("up", (6, 16, 16), {"mode": "bilinear", "kernel": 5}), ("pool", (4, 4, 4), {}),
    ("residual", (4, 8, 8), {}), ("residual", (8, 4, 4), {}), ("basic", (4, 8, 8), {}), ("basic", (8, 4, 4), {}),
    ("bottleneck", (8, 8, 8), {}), ("bottleneck", (6, 8, 8), {}),  # width 6 // 4: a whole number of channels
    ("bottleneck", (16, 4, 4), {"width": 8, "groups": 2}),
    ("cornet", (4, 8, 8), {}), ("cornet", (8, 4, 4), {"scale": 2}),
])
@pytest.mark.parametrize("norm", ["per_step", "shared", "none", {"kind": "group", "groups": 1, "time": "shared"},
                                  "instance", "layer", {"kind": "layer", "time": "shared"}],
                         ids=["per_step", "shared", "none", "group", "instance", "layer", "layer-shared"])
def test_every_ops_count_is_what_its_module_holds(op, target, params, norm):
    from cortexgraph.ops.norm_spec import parse_norm
    from cortexgraph.sizes import weight_set_size

    definition = lookup("transition", op)
    norm = parse_norm(norm)
    if norm.kind == "layer" and not definition.layer_norm:
        pytest.skip(f"{op} has norms at more than one size: the analysis refuses a layer norm for it")
    validated = definition.params.model_validate(params)
    steps = (1, 2, 3)
    module = definition.load()(OpContext(definition.name, IN, target, validated, norm_policy=norm.policy,
                                         norm_steps=steps, norm_kind=norm))
    size = weight_set_size(weights(definition, IN, target, validated), norm, len(steps), tied=False,
                           spatial=target[1] * target[2])
    assert size.parameters == sum(p.numel() for p in module.parameters()) and isinstance(size.parameters, int)
    assert size.statistics == sum(b.numel() for n, b in module.named_buffers() if "running" in n)


def test_a_transposed_upsampling_between_areas_that_are_not_square_counts_its_kernel():
    from cortexgraph.sizes import weight_set_size

    definition = lookup("transition", "up")
    source, target = (4, 4, 2), (6, 8, 4)  # kernel and stride 2: the ratio of heights (and of widths)
    validated = definition.params.model_validate({"mode": "transpose"})
    module = definition.load()(OpContext("up", source, target, validated, norm_steps=(1,)))
    size = weight_set_size(weights(definition, source, target, validated), NormSpec(), 1, tied=False)
    assert size.parameters == sum(p.numel() for p in module.parameters()) == 4 * 6 * 2 * 2 + 2 * 6


def test_sizes_are_written_in_the_largest_unit_they_reach():
    from cortexgraph.sizes import format_bytes

    cases = {999: "999 bytes", 1000: "1.0 kB", 999_999: "1000.0 kB", 10**6: "1.0 MB", 10**9: "1.0 GB",
             10**12: "1.0 TB", 2_500_000_000_000: "2.5 TB"}
    assert {n: format_bytes(n) for n in cases} == cases


@pytest.mark.parametrize("name", sorted(bundled_specs()))
def test_the_plan_counts_what_the_built_model_holds(name):
    with torch.device("meta"):
        model = build(name)
    plan = model.plan
    assert plan.size.parameters == sum(p.numel() for p in model.parameters())
    assert plan.size.statistics == sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    for path, group in plan.weight_sets.items():  # ties included: borrowed weights count under their owner
        assert group.size.parameters == sum(p.numel() for p in model.weight_set(path).parameters()), path


class Custom(nn.Module):
    """A user's op that does not say how many weights it holds: measured on the meta device."""

    def __init__(self, ctx: OpContext):
        super().__init__()
        self.conv = nn.Conv2d(ctx.in_channels, ctx.out_channels, 3, padding=1, bias=True)
        self.norm = ctx.norm(ctx.out_channels)

    def forward(self, x, step):
        return self.norm(self.conv(x), step)


def test_ops_without_a_count_are_measured():
    register_op("custom", Custom)
    try:
        model = build(BIG.replace("CHANNELS", "8").replace("conv", "custom"))
        assert model.plan.size.parameters == sum(p.numel() for p in model.parameters())
    finally:
        unregister_op("custom")


BIG = """
cortexgraph: 1
name: big
input: {channels: CHANNELS, size: 8}
areas:
  A: {channels: CHANNELS, size: 8}
  B: {channels: CHANNELS, size: 8}
inputs: {A: once}
steps: 1000
defaults: {share: none}
transitions:
  A: {A: conv, B: conv}
readout: {area: B, head: {classes: 2}}
"""


def test_a_spec_too_big_is_refused_with_its_size_before_anything_is_built(capsys, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(BIG.replace("CHANNELS", "16384"))
    assert main(["validate", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}:12:10: transitions.A.A: the model would hold 4,831,903,776,770 parameters "
                           "(19.3 TB with its norms' statistics, as float32), above the limit of 4,000,000,000; "
                           "edge A->A holds 2,415,951,872,000")
    assert line.endswith("raise the limit with --limit parameters=N (Limits(parameters=N)) if you mean it)")
    with pytest.raises(SpecError, match="above the limit of 4,000,000,000"):
        build(str(path))


def test_a_head_too_big_is_counted_and_named(capsys, tmp_path):
    """A readout of a billion classes: 64 billion weights in the head, refused at the classes."""
    path = tmp_path / "heads.yaml"
    path.write_text(BIG.replace("CHANNELS", "64").replace("steps: 1000", "steps: 2")
                    .replace("defaults: {share: none}", "defaults: {share: time}")
                    .replace("classes: 2", "classes: 1000000000"))
    assert main(["validate", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}:13:36: readout.head.classes: the model would hold 65,000,")
    assert "; the head holds 65,000,000,000 (fewer classes, or raise the limit" in line


def test_validate_reports_the_parameters_and_a_raised_limit_lets_a_spec_through(capsys, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(BIG.replace("CHANNELS", "256"))
    assert main(["validate", str(path)]) == 0
    assert "big: 2 areas, 2 edges, 1000 steps, 1,180,672,514 parameters;" in capsys.readouterr().out
    path.write_text(BIG.replace("CHANNELS", "16384"))
    assert main(["validate", "--limit", "parameters=5000000000000", "--json", str(path)]) == 0
    assert '"parameters": 4831903776770' in capsys.readouterr().out


def test_build_takes_the_limit(tmp_path):
    with pytest.raises(SpecError, match=r"would hold 1,184,018 parameters \(4.9 MB .* above the limit of 1,000,000"):
        build(BIG.replace("CHANNELS", "8"), limits=Limits(parameters=1_000_000))
    assert build(BIG.replace("CHANNELS", "8"), limits=Limits(parameters=2_000_000)).plan.size.parameters == 1_184_018


def test_compile_builds_no_weights_however_big(capsys, tmp_path, monkeypatch):
    models, convs = [], []
    real_model, real_conv = model_module.CortexNet.__init__, torch.nn.Conv2d.__init__

    def model_init(self, plan):
        models.append(plan)
        real_model(self, plan)

    def conv_init(self, *args, **kwargs):
        real_conv(self, *args, **kwargs)
        convs.append(self.weight.device.type)

    monkeypatch.setattr(model_module.CortexNet, "__init__", model_init)
    monkeypatch.setattr(torch.nn.Conv2d, "__init__", conv_init)
    path = tmp_path / "big.yaml"
    path.write_text(BIG.replace("CHANNELS", "512").replace("steps: 1000", "steps: 40"))
    assert main(["compile", str(path)]) == 0
    assert models == []  # the summary reads the Plan: no model is built
    assert convs and set(convs) == {"meta"}  # its parts, to count FLOPs, on the meta device: no weights
    assert "parameters: 188,826,626" in capsys.readouterr().out


def test_build_refuses_a_model_bigger_than_the_machines_memory(monkeypatch):
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 1000}  # 4 MB
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    with pytest.raises(SpecError, match=r"big holds 1,184,018 parameters: 4.9 MB with its norms' statistics, more "
                                        r"than this machine's 4.1 MB of memory"):
        build(BIG.replace("CHANNELS", "8"))
