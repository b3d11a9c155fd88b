"""Every invalid spec under tests/specs/invalid names where it is wrong and what is wrong.

Each file starts with `# expect: LINE:COL PATH :: MESSAGE (HINT)`: an error must be
reported at that line and column, for that path, with that whole text (the message,
and its hint in parentheses where it has one).
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
    line, col, where, text = match.groups()
    return int(line), int(col), where, text


def test_there_are_at_least_30_invalid_specs():
    assert len(INVALID) >= 30


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_spec_is_rejected_with_location_and_message(path):
    line, col, where, text = expectation(path)
    with pytest.raises(SpecError) as caught:
        analyze(load_spec(path))
    assert f"{path}:{line}:{col}: {where}: {text}" in [str(p) for p in caught.value.errors], str(caught.value)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_cli_rejects_invalid_spec_with_exit_code_2(path, capsys):
    line, col, where, text = expectation(path)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}:{col}: {where}: {text}" in err
    assert "Traceback" not in err


def test_an_unknown_key_that_looks_like_a_union_tag_is_named_as_written():
    # pydantic writes a union's member as "list[...]" in a loc; a key the spec wrote is never taken for one
    # (found by the fuzzer: `{"[": 1}` as a key raised IndexError)
    with pytest.raises(SpecError) as caught:
        load_spec({"cortexgraph": 1, "[": 1})
    assert "<spec>:1:1: ['[']: unknown field '[' (known: areas, checkpoint, cortexgraph" in str(caught.value)
    # pydantic marks an error in a mapping's key with a last "[key]": an unknown field written "[key]" is not that
    text = ("cortexgraph: 1\nname: k\ninput: {channels: 2, size: 4}\nareas:\n"
            "  A: {channels: 2, size: 4, \"[key]\": 1}\ninputs: {A: once}\nsteps: 2\n"
            "readout: {area: A, head: {classes: 2}}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(text)
    assert str(caught.value) == ("<text>:5:29: areas.A['[key]']: unknown field '[key]' (known: cell, channels, "
                                 "modulation, size)")
