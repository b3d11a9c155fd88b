"""Every code block in the README and the docs runs as written (or, for training on data that is not here,
parses as the command line would read it), and every parameter name they mention exists."""

import contextlib
import io
import re
import shlex

import pytest
import torch
import yaml

from cortexgraph import build, load_spec
from cortexgraph.cli import build_parser, main

from .conftest import ROOT
from .test_cornet import published_state_dict, reference_cornet_s

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "specs" / "README.md",
        ROOT / "examples" / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
BLOCKS = [(f"{doc.name}:{text[:m.start()].count(chr(10)) + 1}", m[1], m[2])
          for doc in DOCS for text in [doc.read_text()] for m in FENCE.finditer(text)]


def blocks(language):
    return [pytest.param(body, id=where) for where, lang, body in BLOCKS if lang == language]


@pytest.mark.parametrize("code", blocks("python"))
def test_python_blocks_run_as_written(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "cornet_s-1d3f7974.pth" in code:  # the published checkpoint, in its layout, with random weights
        torch.save({"state_dict": published_state_dict(reference_cornet_s())}, "cornet_s-1d3f7974.pth")
    if "cornet_rt-933c001c.pth" in code:
        from tests.test_cornet_family import CORnetR, _published

        torch.save({"state_dict": _published(CORnetR(same_step=False))}, "cornet_rt-933c001c.pth")
    blt_file = "b64_l_1_t_0_ltinteract_additive_T_10_ltposition_all_num_1.pth"
    if blt_file in code:  # the lab's BL layout (train_net.py's flags), with random weights
        from tests.test_blt import BLTNet64

        torch.save(BLTNet64(lateral_connections=True, topdown_connections=False).state_dict(), blt_file)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<README>", "exec"), {})


@pytest.mark.parametrize("text", blocks("yaml"))
def test_yaml_blocks_are_valid_specs_or_valid_yaml(text):
    data = yaml.safe_load(text)
    if "readout" in data and "..." not in text:  # a whole spec: it must validate and build
        with torch.device("meta"):
            build(text)
    else:  # an outline or a fragment of one: it must at least be read
        assert isinstance(data, dict)


RUNS = {"specs", "validate", "compile", "draw", "schema"}  # quick enough to run; others are parsed only
PLACEHOLDERS = {"SPEC...": "demo/frnn3-digits", "SPEC": "demo/frnn3-digits",
                "runs/demo/checkpoint.pt": "demo/frnn3-digits"}  # (what `make demo` trains)


@pytest.mark.parametrize("script", blocks("sh"))
def test_shell_blocks_are_commands_that_exist(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0] == "make":  # make demo / make test: what CI and the README run
            continue
        if words[:2] == ["python", "-c"]:  # a file the next lines use, made as the reader would make it
            exec(words[2], {})
            continue
        if words[0] == "python":
            assert (ROOT / words[1]).is_file(), line
            continue
        if words[0] == "torchrun":
            words = words[words.index("cortexgraph"):]
        assert words[0] == "cortexgraph", line
        if ">" in words:
            words = words[:words.index(">")]
        args = [PLACEHOLDERS.get(w, w) for w in words[1:]]
        if args[0] == "sweep":  # parsed, and its file read as the command reads it
            from cortexgraph.sweep import load_sweep

            load_sweep(ROOT / build_parser().parse_args(args).words[-1])
            continue
        if args[0] in RUNS:
            assert main(args) == 0, line
        else:
            parsed = build_parser().parse_args(args)
            load_spec(parsed.spec)
    capsys.readouterr()


def test_the_parameter_names_the_readme_gives_exist():
    names = re.findall(r"`((?:edges|head|prenet)\.[^`]+\.(?:weight|bias))`", (ROOT / "README.md").read_text())
    assert names
    state = build("liao2016/frnn4-imagenet").state_dict()  # the README's example spec
    assert [n for n in names if n not in state] == []


def test_the_docs_stand_alone():
    """No page, spec or docstring cites notes that are not in the repository."""
    files = [*DOCS, *ROOT.glob("specs/**/*.yaml"), *ROOT.glob("cortexgraph/**/*.py")]
    cited = [str(f.relative_to(ROOT)) for f in files if re.search(r"design\.md|design notes", f.read_text())]
    assert cited == []


def test_the_examples_tables_are_made_from_their_csvs():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "examples" / "tables.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_a_table_not_made_yet_keeps_the_text_after_it(monkeypatch):
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    tables = importlib.import_module("tables")
    monkeypatch.setitem(tables.TABLES, "a", lambda: "| A |")
    monkeypatch.setitem(tables.TABLES, "b", lambda: "| B |")
    text = "<!-- table: a -->\n<!-- end of table -->\nprose\n<!-- table: b -->\nold\n<!-- end of table -->\n"
    assert tables.render(text) == ("<!-- table: a -->\n| A |\n<!-- end of table -->\nprose\n"
                                   "<!-- table: b -->\n| B |\n<!-- end of table -->\n")  # (once swallowed "prose")
    sys.modules.pop("tables", None)


def test_the_ops_table_is_the_registry_s():
    from cortexgraph.ops.registry import ops_table

    text = (ROOT / "docs" / "spec.md").read_text()
    start = text.index("<!-- ops: generated by cortexgraph.ops.registry.ops_table -->\n")
    table = text[text.index("\n", start) + 1:text.index("\n<!-- end of ops -->")]
    assert table == ops_table(), "regenerate the table between the markers from ops_table()"


def test_the_cells_table_is_the_registry_s():
    from cortexgraph.ops.cell_registry import cells_table

    text = (ROOT / "docs" / "spec.md").read_text()
    start = text.index("<!-- cells: generated by cortexgraph.ops.cell_registry.cells_table -->\n")
    table = text[text.index("\n", start) + 1:text.index("\n<!-- end of cells -->")]
    assert table == cells_table(), "regenerate the table between the markers from cells_table()"
