"""Drawings come from the Plan: golden DOT files for the bundled specs, rendering, and the edge kinds."""

import shutil

import pytest

from cortexgraph import build, draw
from cortexgraph.bundled import bundled_specs
from cortexgraph.cli import main
from cortexgraph.describe import format_steps
from cortexgraph.drawing import VIEWS, DrawError, render

from .update_golden import golden_path

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("name", sorted(bundled_specs()))
def test_drawing_matches_its_golden_file(name, view):
    """Regenerate with `python tests/update_golden.py` and review the diff when a drawing changes on purpose."""
    assert draw(name, view).source == golden_path(name, view).read_text()


@needs_dot
@pytest.mark.parametrize("name", sorted(bundled_specs()))
def test_rendered_svg_names_every_area(name, tmp_path):
    path = render(draw(name, "rolled"), str(tmp_path / "graph.svg"))
    svg = open(path).read()
    for area in build(name).spec.areas:
        assert f">{area}</text>" in svg


def test_edge_kinds_come_from_the_hierarchy():
    text = """
cortexgraph: 1
name: kinds
input: {channels: 3, size: 32}
prenet: [{conv: {out: 8}}]
areas:
  V1: {channels: 8, size: 32}
  V2: {channels: 8, size: 16}
  V3: {channels: 8, size: 16}
  V4: {channels: 8, size: 8}
inputs: {V1: once}
steps: 4
transitions:
  V1: {V1: residual, V2: down, V4: pool}
  V2: {V1: up, V3: conv, V4: down}
  V3: {V4: down}
readout: {area: V4, head: {classes: 2}}
"""
    model = build(text)
    level, kinds = model.plan.levels, model.plan.kinds
    assert level == {"V1": 0, "V2": 1, "V3": 2, "V4": 3}
    assert kinds["V1->V2"] == "feedforward" and kinds["V2->V1"] == "feedback"
    assert kinds["V1->V1"] == "lateral"
    assert kinds["V2->V3"] == "feedforward"  # same size, reached later
    assert kinds["V1->V4"] == "skip" and kinds["input->V1"] == "input"


def test_unrolled_view_draws_what_runs_and_collapses_long_runs():
    model = build("cornet/cornet-s")
    dot = draw(model, "unrolled").source
    assert "col_4 [label=<t=4-6<br/>x3>" in dot  # V4's recurrence, steps 4-6, as one column
    long = draw(build("liao2016/frnn4-imagenet", steps=40), "unrolled").source
    assert "t=4-37<br/>x34" in long  # steps 4-37 compute the same thing; from 38 on, V1 is no longer needed


def test_rolled_view_greys_out_pruned_edges():
    model = build("liao2016/frnn4-imagenet", steps=3)  # IT is first reached, and read out, at step 3
    assert "IT->V4" not in {c.edge.name for u in model.plan.updates for c in u.calls}
    source = draw(model, "rolled").source
    feedback = source[source.index("area_IT -> area_V4"):]
    assert feedback[: feedback.index("]")].count('color="#bbbbbb"') == 1


def test_ranges_read_like_a_person_writes_them():
    assert format_steps([1, 2, 3, 5, 7, 9]) == "1-3, 5-9/2"
    assert format_steps([4]) == "4" and format_steps([2, 4]) == "2, 4" and format_steps([1, 2]) == "1-2"
    assert format_steps([0, 5, 6]) == "0, 5-6" and format_steps([0, 2, 9, 10]) == "0, 2, 9-10"


def test_draw_command_writes_the_format_of_the_suffix(tmp_path, capsys):
    target = tmp_path / "frnn.dot"
    assert main(["draw", "liao2016/frnn4-imagenet", "-o", str(target), "--view", "matrix"]) == 0
    assert target.read_text().startswith('digraph "frnn4-imagenet-matrix"')
    assert "wrote" in capsys.readouterr().out


def test_without_dot_only_the_dot_format_works(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    assert main(["draw", "cornet/cornet-s", "-o", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs Graphviz's `dot` program: install it" in err
    assert not (tmp_path / "c.png").exists()
    assert main(["draw", "cornet/cornet-s", "-o", str(tmp_path / "c.dot")]) == 0
    with pytest.raises(DrawError):
        render(draw("cornet/cornet-s"), str(tmp_path / "x.pdf"))


def test_a_bad_spec_is_exit_code_2(capsys):
    assert main(["draw", "tests/specs/invalid/unknown-op.yaml"]) == 2


def test_draw_steps_means_what_compile_steps_means(tmp_path, capsys):
    """Both replace the spec's steps: a run past the spec's own steps is drawn, not refused."""
    out = str(tmp_path / "u.dot")
    assert main(["draw", "demo/frnn3-digits", "--steps", "20", "--view", "unrolled", "-o", out]) == 0
    assert "t=20" in (tmp_path / "u.dot").read_text()
    assert main(["compile", "demo/frnn3-digits", "--steps", "20"]) == 0
    assert "20 steps, readout V4 at step 20" in capsys.readouterr().out
    for command in ("draw", "compile"):
        assert main([command, "demo/frnn3-digits", "--steps", "0"]) == 2
        assert capsys.readouterr().err.strip().endswith("frnn3-digits.yaml:17:8: steps: must be > 0, got 0")


def test_a_format_that_cannot_be_written_is_a_user_error(tmp_path, capsys):
    assert main(["draw", "demo/frnn3-digits", "-o", str(tmp_path / "x.jpg")]) == 2
    assert capsys.readouterr().err == ("cortexgraph: cannot write 'jpg': formats are svg, png, pdf, dot "
                                       "(from --format, or the output's suffix)\n")


def test_drawing_a_spec_needs_no_torch():
    import subprocess
    import sys

    code = ("import sys; from cortexgraph import draw; draw('liao2016/frnn4-imagenet'); "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_rendering_refusals_say_the_formats_and_the_hint_given(tmp_path):
    from cortexgraph.drawing import rendered

    graph = draw("demo/frnn3-digits")
    with pytest.raises(DrawError) as caught:
        rendered(graph, "jpg")
    assert str(caught.value) == "cannot write 'jpg': formats are svg, png, pdf, dot"
    taken = tmp_path / "taken.dot"
    taken.write_text("mine")
    with pytest.raises(Exception, match=r"; write elsewhere$"):
        render(graph, str(taken), "dot", replace=False, hint="write elsewhere")
    assert taken.read_text() == "mine"


def test_a_plan_drawn_for_other_steps_may_import_its_ops(tmp_path, monkeypatch):
    """A Plan whose spec names an op by import path is compiled again for `steps` with the permission given."""
    import cortexgraph
    from cortexgraph.ops.registry import unregister_op

    (tmp_path / "lab_draw_ops.py").write_text(
        "import cortexgraph\nfrom cortexgraph.ops.layers import ConvNormAct\nfrom cortexgraph.ops.op_params import "
        "ConvParams\ncortexgraph.register_op('lab_conv', ConvNormAct, params=ConvParams, replace=True)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = bundled_specs()["demo/frnn3-digits"].read_text()
    text = text.replace("V1: {V1: residual,", "V1: {V1: 'lab_draw_ops:lab_conv',")
    try:
        plan = cortexgraph.compile(text, allow_imports=True)
        assert "t=3" in draw(plan, view="unrolled", steps=3, allow_imports=True).source
    finally:
        unregister_op("lab_conv")


def test_a_suffix_that_is_no_format_is_a_name_like_any_other(tmp_path, capsys):
    """`--format` decides; a suffix is checked against it only where the suffix is itself a format."""
    out = tmp_path / "graph.Xsvg"
    assert main(["draw", "demo/frnn3-digits", "-o", str(out), "--format", "dot"]) == 0
    assert out.read_text().startswith("digraph")
    assert main(["draw", "demo/frnn3-digits", "-o", str(tmp_path / "graph.svg"), "--format", "dot"]) == 2
    assert "its suffix says svg" in capsys.readouterr().err
