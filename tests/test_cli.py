"""The command line: exit codes, output formats, and no traceback for a bad spec."""

import json
import subprocess
import sys

import pytest

from cortexgraph.cli import main

from .conftest import INVALID, VALID

EDGE_LIST = next(p for p in VALID if p.name == "edge-list.yaml")
SCHEDULE = next(p for p in VALID if p.name == "schedule.yaml")


def test_validate_valid_specs_exits_0(capsys):
    assert main(["validate", *map(str, VALID), "liao2016/frnn4-imagenet"]) == 0
    out = capsys.readouterr().out
    assert "liao2016/frnn4-imagenet: valid: frnn4-imagenet: 4 areas, 10 edges, 8 steps" in out
    assert "signal reaches V1 0, V2 1, V4 2, IT 3" in out


def test_validate_with_warnings_exits_0(tmp_spec, capsys):
    path = tmp_spec(SCHEDULE.read_text().replace("at: {from: 4}", "at: [4, 5, 9]"))
    assert main(["validate", str(path)]) == 0
    assert "warning: step 9 lies beyond" in capsys.readouterr().out


def test_one_bad_spec_among_good_ones_exits_2(capsys):
    assert main(["validate", str(VALID[0]), str(INVALID[0])]) == 2
    captured = capsys.readouterr()
    assert "valid" in captured.out and str(INVALID[0]) in captured.err


def test_validate_json_output(capsys):
    assert main(["validate", "--json", str(EDGE_LIST), str(INVALID[-1])]) == 2
    out = capsys.readouterr().out
    report = json.loads(out)
    assert out.startswith('[\n  {\n    "') # indented for a reader, as the other --json outputs
    assert [entry["valid"] for entry in report] == [True, False]
    assert report[0]["summary"]["arrival"] == {"V1": 0, "V2": 1, "V4": 2}
    problem = report[1]["problems"][0]
    assert set(problem) == {"file", "line", "col", "path", "severity", "message", "hint"}
    assert problem["severity"] == "error"


def test_limit_option_raises_a_limit(tmp_spec, capsys):
    text = SCHEDULE.read_text().replace("steps: 5", "steps: 1200")
    path = tmp_spec(text)
    assert main(["validate", str(path)]) == 2
    assert "--limit steps=N" in capsys.readouterr().err
    assert main(["validate", "--limit", "steps=2000", str(path)]) == 0


def test_bad_limit_option_is_one_line():
    try:
        main(["validate", "--limit", "stepz=3", str(VALID[0])])
    except SystemExit as exc:
        assert "unknown limit 'stepz'" in str(exc)
    else:
        raise AssertionError("expected SystemExit")


def test_schema_is_json_schema_with_every_top_level_field(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert {"cortexgraph", "areas", "edges", "transitions", "schedule", "readout"} <= set(schema["properties"])
    op = schema["$defs"]["OpRef"]
    assert op["description"] == "an op name, or {name: {param: value}}"
    assert op["anyOf"][0]["type"] == "string" and "residual" in op["anyOf"][0]["examples"]
    assert op["anyOf"][1] == {"type": "object", "minProperties": 1, "maxProperties": 1,  # {name: {params}}
                              "additionalProperties": {"type": ["object", "null"]}}
    assert schema["$defs"]["EdgeSpec"]["properties"]["from"]


def test_specs_lists_bundled_specs(capsys):
    assert main(["specs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("torchvision/resnet18 ") for line in lines)
    demo = next(line for line in lines if line.startswith("demo/frnn3-digits "))
    assert demo.split(None, 1)[1] == "The offline demo: a 3-state fully recurrent network (V1, V2, V4)..."


def test_real_process_exit_code_and_no_traceback():
    done = subprocess.run([sys.executable, "-m", "cortexgraph", "validate", str(INVALID[0]), "nope.yaml"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "nope.yaml:1:1: (document): no such file or bundled spec: 'nope.yaml'" in done.stderr


def test_validate_a_folder_validates_every_spec_in_it(tmp_path, capsys):
    (tmp_path / "nested").mkdir()
    for i, path in enumerate(VALID[:2]):
        (tmp_path / ("nested" if i else ".") / path.name).write_text(path.read_text())
    (tmp_path / "README.md").write_text("not a spec")
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count(": valid: ") == 2 and "README" not in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["validate", str(empty)]) == 2
    assert capsys.readouterr().err == f"cortexgraph: {empty} is a folder with no spec files (.yaml, .yml, .json)\n"


def test_an_unknown_flag_shows_the_commands_own_usage(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["train", "demo/frnn3-digits", "--bogus"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("usage: cortexgraph train ") and err.endswith(
        "cortexgraph train: error: unrecognized arguments: --bogus\n")


def test_train_help_shows_every_default(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split("options:")[1].split())
    for flag, default in [("--epochs", "10"), ("--batch-size", "128"), ("--momentum", "0.9"), ("--seed", "0"),
                          ("--optimizer", "sgd"), ("--schedule", "cosine"), ("--device", "auto")]:
        assert f"default: {default}" in text[text.index(f"{flag} "):][:200], flag


def test_a_model_prints_as_a_page_not_a_tree():
    from cortexgraph import build

    text = repr(build("cornet/cornet-s"))
    lines = text.splitlines()
    assert len(lines) == 11 and lines[0].startswith("CortexNet(cornet-s: input 3x224x224, 4 areas, 8 steps")
    assert "V2 <- V1->V2     cornet at 1; weights tied to V2->V2, norm per step" in text
    assert lines[-2].split()[-1] == "513,000" and lines[-1] == ")"


def test_the_train_flags_are_the_fields_of_train_config():
    from cortexgraph.cli import build_parser
    from cortexgraph.flags import given
    from cortexgraph.train import TrainConfig

    args = build_parser().parse_args([
        "train", "s.yaml", "--quiet", "--no-anytime", "--activation-checkpointing", "--norm", "shared",
        "--optimizer", "adamw", "--epochs", "3", "--clip-grad", "1.5", "--no-amp", "--steps", "4"])
    config = TrainConfig(**given(args, TrainConfig))
    assert config == TrainConfig(spec="s.yaml", progress=False, anytime=False, activation_checkpointing=True,
                                 norm="shared", optimizer="adamw", epochs=3, clip_grad=1.5, amp=False, steps=4)
    assert config.settings()["activation_checkpointing"] is True and config.overrides().checkpoint is True
    defaults = TrainConfig(**given(build_parser().parse_args(["train", "s.yaml"]), TrainConfig))
    assert defaults == TrainConfig(spec="s.yaml")  # each flag's default is its field's


@pytest.mark.parametrize("flags, mode", [([], None), (["--compile"], "default"),
                                         (["--compile", "reduce-overhead"], "reduce-overhead"),
                                         (["--compile", "max-autotune"], "max-autotune")])
def test_compile_takes_a_mode_or_none(flags, mode):
    from cortexgraph.cli import build_parser

    assert build_parser().parse_args(["train", "s.yaml", *flags]).compile == mode


def test_an_unknown_compile_mode_is_one_line(capsys):
    from cortexgraph.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["train", "s.yaml", "--compile", "fast"])
    assert exited.value.code == 2
    line = capsys.readouterr().err.splitlines()[-1].replace("'", "")  # Python 3.12 stopped quoting choices
    assert line == ("cortexgraph train: error: argument --compile: invalid choice: fast (choose from default, "
                    "reduce-overhead, max-autotune)")


@pytest.mark.parametrize("word", ["a" * 300, ""])
def test_any_word_after_compile_gets_the_one_line_error(word, capsys):
    """A name too long for the file system (Path.exists raises) and an empty word (Path('') exists)."""
    from cortexgraph.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["train", "s.yaml", "--compile", word])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"cortexgraph train: error: argument --compile: invalid choice: {word} (choose from default, "
        "reduce-overhead, max-autotune)")


def test_a_spec_written_right_after_compile_is_named_in_its_error(capsys):
    """`--compile` takes an optional MODE, so argparse gives it the next word: say so for a spec."""
    from cortexgraph.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["train", "--compile", "s.yaml"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "cortexgraph train: error: argument --compile: invalid choice: s.yaml (choose from default, "
        "reduce-overhead, max-autotune); a word right after --compile is read as its value: give the spec "
        "before --compile")


@pytest.mark.parametrize("bad, message", [
    ({"optimizer": "adam"}, "optimizer: input should be 'sgd' or 'adamw'"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"stepz": 3}, "stepz: extra inputs are not permitted"),
])
def test_a_bad_train_config_is_one_line(bad, message):
    from cortexgraph.train import TrainConfig

    with pytest.raises(ValueError) as caught:
        TrainConfig(spec="s.yaml", **bad)
    assert str(caught.value) == message
