"""Every invalid spec under tests/specs/invalid names where it is wrong and what is wrong.

Each file starts with `# expect: LINE:COL PATH :: FRAGMENT`: an error must be
reported at that line and column, for that path, with that text in it.
"""

import re

import pytest

from cortexgraph import SpecError, analyze, load_spec
from cortexgraph.cli import main

from .conftest import INVALID

EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+?) :: (.+)$")


def expectation(path):
    match = EXPECT.match(path.read_text().splitlines()[0])
    assert match, f"{path} lacks its '# expect:' line"
    line, col, where, fragment = match.groups()
    return int(line), int(col), where, fragment


def test_there_are_at_least_30_invalid_specs():
    assert len(INVALID) >= 30


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_spec_is_rejected_with_location_and_message(path):
    line, col, where, fragment = expectation(path)
    with pytest.raises(SpecError) as caught:
        analyze(load_spec(path))
    matching = [p for p in caught.value.errors if p.path == where and fragment in str(p)]
    assert matching, f"expected {where}: ...{fragment}... in:\n{caught.value}"
    problem = matching[0]
    assert (problem.file, problem.line, problem.col) == (str(path), line, col)
    assert str(problem).startswith(f"{path}:{line}:{col}: {where}: ")


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_cli_rejects_invalid_spec_with_exit_code_2(path, capsys):
    line, col, where, fragment = expectation(path)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}:{col}: {where}: " in err
    assert "Traceback" not in err
