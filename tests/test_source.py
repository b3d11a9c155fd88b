"""Reading spec text safely: no code runs, nothing is silently overwritten, nothing explodes."""


import pytest
import yaml

import cortexgraph.source as source_module
from cortexgraph import SpecError, load_spec
from cortexgraph.source import TextLimits, _yaml_problem, parse_text

from .helpers import counted_values


def problems(text, file="<spec>"):
    with pytest.raises(SpecError) as caught:
        parse_text(text, file)
    return caught.value.problems


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:os.system ['touch {marker}']",
    "!!python/name:os.system",
    "!!python/module:os",
    "!include other.yaml",
])
def test_tags_that_build_objects_are_refused_and_run_nothing(tag, tmp_path):
    marker = tmp_path / "ran"
    found = problems(f"name: {tag.format(marker=marker)}\n")
    assert "is not allowed" in found[0].message
    assert (found[0].line, found[0].col) == (1, 7)
    assert not marker.exists()


def test_tag_on_a_mapping_is_refused():
    assert "is not allowed" in problems("a: !!python/object:collections.OrderedDict {x: 1}\n")[0].message


def test_duplicate_keys_are_errors_at_any_depth():
    found = problems("a:\n  b: 1\n  c: 2\n  b: 3\n")
    assert found[0].message == "duplicate key 'b'" and found[0].line == 4 and found[0].path == "a.b"


def test_json_duplicate_keys_are_errors():
    found = problems('{"a": 1, "a": 2}', "x.json")
    assert str(found[0]) == "x.json:1:1: (document): duplicate key 'a' (a key may appear once)"


def test_merge_keys_keep_the_mappings_own_values():
    data, _ = parse_text("base: &b {x: 1, y: 2}\nover: {<<: *b, y: 3}\n")
    assert data["over"] == {"x": 1, "y": 3}


def test_a_merge_key_must_refer_to_a_mapping():
    (found,) = problems("base: &b 5\nover: {<<: *b, y: 3}\n")
    assert (found.path, found.line, found.message) == ("over", 1, "a merge key ('<<') must refer to a mapping")


def test_a_yaml_error_without_a_mark_is_placed_at_the_start():
    error = yaml.MarkedYAMLError("while reading", None, "something went wrong", None)
    found = _yaml_problem(error, "cortexgraph: 1\n", "s.yaml")
    assert (found.file, found.line, found.col) == ("s.yaml", 1, 1)


def test_a_number_json_refuses_where_the_walk_does_not_is_still_one_error(monkeypatch):
    # json says only that some integer is too long; where the walk then finds none, the file is named.
    def refuse(text, source):
        raise source_module._NumberTooLong

    monkeypatch.setattr(source_module, "_json_data", refuse)
    (found,) = problems('{"cortexgraph": 1}', "s.json")
    assert (found.file, found.message) == ("s.json", "a number too long: Python reads at most 4,300")


def test_billion_laughs_is_refused_quickly():
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for name, prev in zip("bcdefghi", "abcdefgh"):
        text += f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
    with counted_values() as values:  # work counted, not timed: expanding would build 10^9 values
        assert "expands to more than" in problems(text)[0].message
    assert values[0] == 0  # refused from the alias graph, before a single value is built


def test_recursive_alias_is_refused():
    assert "contains it" in problems("a: &a [1, *a]\n")[0].message


def test_deep_nesting_is_refused_not_a_crash():
    found = problems("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nest" in found[0].message


def test_moderate_nesting_beyond_the_limit_is_refused():
    found = problems("a: " + "[" * 100 + "]" * 100 + "\n")
    assert "nested more than 64 levels" in found[0].message


@pytest.mark.parametrize("file", ["s.yaml", "s.json"])
def test_nesting_is_allowed_up_to_the_limit_exactly(file):
    # a value 64 levels deep (the key, then 63 lists) is read; one level more is refused
    def text(lists: int) -> str:
        inner = "[" * lists + "0" + "]" * lists
        return f'{{"a": {inner}}}' if file.endswith(".json") else f"a: {inner}\n"

    data, _ = parse_text(text(63), file)
    deepest = data["a"]
    for _ in range(63):
        (deepest,) = deepest
    assert deepest == 0
    assert "nested more than 64 levels deep" in problems(text(64), file)[0].message


def test_non_utf8_bytes_are_refused():
    assert "not UTF-8" in problems(b"name: \xff\xfe\n")[0].message


def test_oversized_text_is_refused_before_parsing():
    with pytest.raises(SpecError, match="larger than 10 bytes"):
        parse_text("name: abcdefghijk\n", limits=TextLimits(max_bytes=10))


def test_yaml_syntax_error_is_located():
    found = problems("a: [1, 2\nb: 3\n", "s.yaml")
    assert found[0].file == "s.yaml" and found[0].line == 2 and "not valid YAML" in found[0].message


def test_json_is_parsed_by_json_rules_and_located(tmp_path):
    data, source = parse_text('{\n\t"a": 1e-3,\n\t"b": [1, {"c": true}]\n}', "x.json")
    assert data == {"a": 0.001, "b": [1, {"c": True}]}
    assert source.locate(("b", 1, "c")) == (3, 17)


def test_json_errors_are_located():
    found = problems('{"a": 1,\n "b": }', "x.json")
    assert (found[0].line, found[0].col) == (2, 7) and "not valid JSON" in found[0].message


def test_json_nan_is_refused():
    assert "NaN" in problems('{"a": NaN}', "x.json")[0].message


def test_empty_document():
    assert "empty" in problems("# only a comment\n")[0].message


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(SpecError, match="no such file or bundled spec"):
        load_spec(str(tmp_path / "nope.yaml"))
    with pytest.raises(SpecError, match="did you mean 'torchvision/resnet18'"):
        load_spec("torchvision/resnet81")


def test_nesting_deeper_than_pythons_stack_is_refused_not_a_crash():
    """Found by `make fuzz`: libyaml parses nesting deeper than Python could recurse into."""
    found = problems("a: " + "[" * 990 + "]" * 990 + "\n")
    assert "nested more than 64 levels" in found[0].message and found[0].path == "(document)"


def test_a_key_named_like_pydantics_key_marker_is_an_ordinary_unknown_field():
    """Found by `make fuzz`: a key written '[key]' is not pydantic's marker for errors in keys."""
    from cortexgraph.spec import parse_spec

    with pytest.raises(SpecError) as caught:
        parse_spec(*parse_text("'[key]': null\n"))
    assert "unknown field '[key]'" in str(caught.value)


@pytest.mark.parametrize("file,text", [
    ("spec.yaml", "cortexgraph: 1\nsteps: {digits}\n"),
    ("spec.yaml", "areas: [1, -{digits}]\n"),
    ("spec.json", '{{"cortexgraph": 1,\n "steps": {digits}}}'),
])
def test_a_number_longer_than_python_reads_is_one_located_error(file, text):
    found = problems(text.format(digits="9" * 5000), file)
    assert len(found) == 1 and found[0].message == "a number of 5,000 digits: Python reads at most 4,300"
    assert found[0].hint == "no spec field needs a number this long"
    assert found[0].line == 2 or found[0].path == "areas[1]"


@pytest.mark.parametrize("file,text,where,message,hint", [
    ("s.yaml", "cortexgraph: 1\nareas:\n\tV1: {channels: 3, size: 8}\n", (3, 1),
     "not valid YAML: found character that cannot start any token", "YAML indents with spaces, never tabs"),
    ("s.yaml", "cortexgraph: 1\nname: x\nsteps 3\nareas: {}\n", (3, 1),  # not on line 4, where it was noticed
     "not valid YAML: could not find expected ':'", "a key is followed by ': ', a colon and a space"),
    ("s.yaml", "cortexgraph: 1\nareas:\n    V1: {channels: 3, size: 8}\n  V2: {channels: 3, size: 8}\n", (4, 3),
     "not valid YAML: did not find expected key",
     "check this line's indentation: it must line up with the keys or '- ' items beside it"),
    ("s.yaml", "cortexgraph: 1\nname: x\n  steps: 3\n", (3, 8),
     "not valid YAML: mapping values are not allowed in this context",
     "a line indented deeper than the one above continues that line's value: line it up with its neighbours, "
     "or quote a value that holds ': '"),
    ("s.yaml", 'cortexgraph: 1\nname: "x\nsteps: 3\n', (2, 7), "not valid YAML: a quote opened here is never closed",
     None),
    ("s.yaml", "cortexgraph: 1\nsteps: [1, 2,\n", (3, 1), "not valid YAML: did not find expected node content",
     "the document ends inside [...], {...} or a quote: close it"),
    ("s.json", '{"cortexgraph": 1,\n "name": "x",\n}\n', (2, 13), "not valid JSON: a comma after the last item",
     "JSON allows no trailing comma: remove it"),
    ("s.json", '{"areas": {"V1": {"channels": 3, }}}', (1, 32), "not valid JSON: a comma after the last item",
     "JSON allows no trailing comma: remove it"),
    ("s.json", '{"areas": [1 2]}', (1, 14), "not valid JSON: Expecting ',' delimiter", None),
])
def test_syntax_errors_point_at_the_mistake_with_a_hint(file, text, where, message, hint):
    (found,) = problems(text, file)
    assert (found.file, (found.line, found.col), found.message, found.hint) == (file, where, message, hint)


@pytest.mark.parametrize("loader", ["libyaml", "pure"])
def test_json_indented_with_tabs_reads_with_its_positions(loader, monkeypatch):
    if loader == "pure":  # where PyYAML has no libyaml: its own parser refuses tabs even in flow style
        monkeypatch.setattr(source_module, "_Loader", yaml.SafeLoader)
    data, source = parse_text('{\n\t"name": "s",\n\t"areas": {\n\t\t"A": {"size": 4}\n\t}\n}\n', "x.json")
    assert data == {"name": "s", "areas": {"A": {"size": 4}}}
    assert source.values[("areas", "A", "size")][0] == 4  # line 4
