"""The front door: `cortexgraph.compile` gives the Plan every consumer runs, with one set of overrides."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import cortexgraph
from cortexgraph import Overrides, SpecError, analyze, build, load_spec
from cortexgraph.plan import PlanFamily

PACKAGE = Path(cortexgraph.__file__).parent


def test_compile_is_the_pipeline_with_the_overrides_applied():
    plan = cortexgraph.compile("liao2016/frnn4-cifar", steps=3, classes=7, size=16)
    by_hand = PlanFamily(analyze(load_spec("liao2016/frnn4-cifar"))).plan()
    assert plan.steps == 3 and by_hand.steps != 3
    spec = plan.spec
    assert (spec.readout.head.classes, spec.input.size) == (7, (16, 16))
    assert str(cortexgraph.compile("liao2016/frnn4-cifar")) == str(by_hand)


def test_build_runs_the_plan_compile_gives():
    model = build("liao2016/frnn4-cifar", steps=3, size=16, share="none")
    assert str(model.plan) == str(cortexgraph.compile("liao2016/frnn4-cifar", steps=3, size=16, share="none"))


def test_compiling_needs_no_torch():
    code = ("import sys, cortexgraph; cortexgraph.compile('liao2016/frnn4-imagenet', steps=4, norm='shared'); "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_an_unknown_or_mistyped_override_is_a_type_error_naming_it():
    with pytest.raises(TypeError) as caught:
        cortexgraph.compile("liao2016/frnn4-cifar", stepz=3)
    assert str(caught.value) == ("'stepz' is not something a run can override; overrides are steps, classes, "
                                 "share, norm, size, checkpoint")
    with pytest.raises(TypeError) as caught:
        build("liao2016/frnn4-cifar", steps="3")
    assert str(caught.value) == "override steps='3': input should be a valid integer"


def test_an_override_out_of_range_is_located_in_the_spec():
    with pytest.raises(SpecError) as caught:
        cortexgraph.compile("liao2016/frnn4-cifar", norm="sometimes")
    assert "defaults.norm" in str(caught.value)


def test_overrides_are_declared_once_and_the_commands_offer_them():
    from cortexgraph.cli import build_parser

    assert list(Overrides.model_fields) == ["steps", "classes", "share", "norm", "size", "checkpoint"]
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {option for action in train._actions for option in action.option_strings}
    assert {"--steps", "--classes", "--share", "--norm", "--size", "--activation-checkpointing"} <= flags


def _calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            for node in ast.walk(tree) if isinstance(node, ast.Call)}


def test_only_the_front_door_runs_the_stages_in_a_row():
    # Analysis then planning, spelt anywhere but the compiler, is a second pipeline that can drift from it.
    spelt = [p.relative_to(PACKAGE).as_posix() for p in sorted(PACKAGE.rglob("*.py"))
             if {"analyze", "PlanFamily"} <= _calls(p) or {"override", "load_spec"} <= _calls(p)]
    assert spelt == ["compiler.py"]


def test_what_runs_the_plan_reads_the_plan_not_the_analysis_behind_it():
    # The Plan is what the module, the drawing, the summary and training read: shapes, edges, kinds and
    # sizes come from it (`Plan.shapes`, `.edges`, `.parts`, ...), so a pass over the Plan sees everything.
    readers = ["drawing.py", "summary.py", "describe.py", "cli.py", "diagnose.py", "export.py", "builder.py",
               "construct.py", "train/loop.py", "interop/mapping.py", "interop/torchvision.py", "interop/cornet.py",
               "extract.py", "evaluate.py"]
    reaching = [name for name in readers
                if any(isinstance(node, ast.Attribute) and node.attr == "analysis"
                       for node in ast.walk(ast.parse((PACKAGE / name).read_text())))]
    assert reaching == []


def test_the_plan_holds_no_analysis_and_its_family_gives_every_call_form():
    plan = cortexgraph.compile("liao2016/frnn4-cifar", steps=5)
    assert not hasattr(plan, "analysis") and "analysis" not in vars(plan.family)
    anytime = plan.variant(5, "anytime")
    assert anytime.family is plan.family and anytime.weight_sets is plan.weight_sets
    first = anytime.reads_out[0]
    assert anytime.reads_out == tuple(range(first, 6)) and plan.reads_out == plan.readout_steps == (5,)


def test_the_architecture_names_every_module_and_each_rule_one_file_that_exists():
    import re

    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    rules = text.split("## Where each rule lives")[1].split("\n## ")[0]
    rows = [line.split("|")[2] for line in rules.splitlines()
            if line.startswith("| ") and not line.startswith(("| rule |", "| --- |"))]
    files = [re.findall(r"`([\w/]+\.py)`", cell) for cell in rows]
    assert len(rows) >= 25 and all(len(named) == 1 and (PACKAGE / named[0]).is_file() for named in files)
    stages = text.split("## The stages")[1].split("\n## ")[0]
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert sorted(m for m in modules if f"`{m}`" not in stages) == []


def test_every_public_name_resolves_and_the_documented_ones_are_public():
    """`cortexgraph.X` for each name of `__all__` (the torch-bound ones imported on first use)."""
    for name in cortexgraph.__all__:
        assert getattr(cortexgraph, name).__name__ == name, name
    documented = {"build", "compile", "load_spec", "register_op", "register_cell", "draw", "summarize", "features",
                  "write_features", "read_features", "AreaLayers", "CortexNet", "Plan", "PlanFamily", "SpecError"}
    assert documented <= set(cortexgraph.__all__)
