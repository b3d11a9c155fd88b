"""Hostile specs: whatever bytes or structure arrive, only the project's spec error comes out,
in bounded work and memory, and the command line exits 2 with a message.

A bounded run is part of `make test`; `make fuzz` runs the `fuzz` profile
(HYPOTHESIS_PROFILE=fuzz, 20,000 examples per test).
"""

import copy
import io
import tracemalloc
from contextlib import redirect_stderr, redirect_stdout

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cortexgraph import SpecError, analyze, load_spec
from cortexgraph.bundled import bundled_specs
from cortexgraph.cli import main
from cortexgraph.source import TextLimits, parse_text
from cortexgraph.spec import parse_spec

from .conftest import VALID
from .helpers import counted_values

SOURCES = VALID + list(bundled_specs().values())
TEXTS = [p.read_text() for p in SOURCES]
DOCS = [yaml.safe_load(t) for t in TEXTS]
MEGABYTES = 300  # the most memory one spec may allocate

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-3, 12), st.integers(-(2**64), 2**64), st.integers(10**6, 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["V1", "V2", "V4", "IT", "S1", "input", "residual", "down", "up", "conv", "once", "all",
                     "every", "time", "none", "per_step", "shared", "V1->V2", "a.b", "mod:cls", "os.path:join", "",
                     "é", "\u202e", "V\u00e9", "x" * 300, "1e5", "!!python/name:os.system"]),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=6), scalars.filter(
        lambda v: isinstance(v, (str, int)) and not isinstance(v, bool))), inner, max_size=4)), max_leaves=8)


def bounded(run) -> SpecError | None:
    """Run `run()`: it may raise nothing but SpecError, within the work and memory bounds; returns the
    SpecError (None if there was none). (Work is counted, not timed: a time bound fails on a busy machine.)"""
    tracemalloc.start()
    error = None
    try:
        with counted_values() as values:
            run()
    except SpecError as exc:
        assert exc.problems and all(p.message and p.line >= 1 and p.col >= 1 for p in exc.problems)
        error = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert values[0] <= TextLimits().max_nodes + 1, f"built {values[0]:,} values"
    assert peak < MEGABYTES * 2**20, f"allocated {peak / 2**20:.0f} MB"
    return error


def check_text(text, json_syntax=False):
    def run():
        data, source = parse_text(text, "fuzz.json" if json_syntax else "fuzz.yaml")
        analyze(parse_spec(data, source))
    return bounded(run)


# --- structure: mutations of every valid and bundled spec ------------------------------------------

def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


def get(node, path):
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_docs(draw):
    doc = copy.deepcopy(draw(st.sampled_from(DOCS)))
    for _ in range(draw(st.integers(1, 4))):
        all_paths = list(paths(doc))
        path = draw(st.sampled_from(all_paths[1:] or [()]))
        if not path:
            return draw(values)
        parent, key = get(doc, path[:-1]), path[-1]
        action = draw(st.sampled_from(["replace", "delete", "rename", "duplicate"]))
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = parent.pop(key)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return doc


@given(mutated_docs())
def test_mutated_specs_raise_only_spec_errors(doc):
    bounded(lambda: analyze(load_spec(doc) if isinstance(doc, dict) else parse_spec(doc)))


@given(mutated_docs())
def test_mutated_specs_written_as_yaml_round_the_whole_reader(doc):
    check_text(yaml.safe_dump(doc, allow_unicode=True))


# --- text: edits of spec files, random documents, random bytes ---------------------------------------

@st.composite
def mutated_texts(draw):
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(["", ":", "- ", "{", "}", "[", "]", "&a ", "*a", "!!python/name:os.system ",
                                      "\n  ", "\t", "'", '"', "<<: ", ",", "0", "99999999999999999999", "é",
                                      "\n" + text[:40], "? ", "%YAML 1.1\n---\n", "\x00", "\ufeff"]))
        cut = draw(st.integers(0, 3))
        text = text[:i] + piece + text[i + cut:]
    return text


@given(mutated_texts(), st.booleans())
def test_mutated_text_raises_only_spec_errors(text, as_json):
    check_text(text, as_json)


@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_raise_only_spec_errors(data, as_json):
    bounded(lambda: analyze(parse_spec(*parse_text(data, "fuzz.json" if as_json else "fuzz.yaml"))))


@given(values, st.booleans())
def test_random_documents_raise_only_spec_errors(doc, as_json):
    import json

    try:
        text = json.dumps(doc) if as_json else yaml.safe_dump(doc, allow_unicode=True)
    except (ValueError, TypeError):
        return  # not representable in that syntax
    check_text(text, as_json)


@given(st.integers(1, 3000), st.sampled_from(["[", "{a: ", "- "]))
def test_deep_nesting_is_refused_quickly(depth, opener):
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    if opener == "- ":
        text = "".join("  " * i + "- " + ("\n" if i < depth - 1 else "x\n") for i in range(min(depth, 200)))
    else:
        text = "a: " + opener * depth + "1" + closer * depth + "\n"
    error = check_text(text)
    assert error is not None  # never a spec
    levels = min(depth, 200) if opener == "- " else depth + 1
    if levels > TextLimits().max_depth:
        message = error.problems[0].message  # the reader's limit, or libyaml's own (about 1,000 levels)
        assert "nested more than 64 levels deep" in message or "maximum nesting depth" in message, error


@given(st.integers(2, 12), st.integers(2, 12))
def test_alias_bombs_are_refused_quickly(width, depth):
    text = "a0: &a0 [" + ", ".join(["x"] * width) + "]\n"
    for i in range(1, depth):
        text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]\n"
    error = check_text(text)
    assert error is not None  # never a spec
    if sum(width**k for k in range(1, depth + 1)) > TextLimits().max_nodes:
        assert "expands to more than" in error.problems[0].message, error


@given(st.lists(st.sampled_from(["name", "steps", "areas", "cortexgraph"]), min_size=2, max_size=6))
def test_duplicate_keys_anywhere_are_errors(keys):
    """Keys every spec has, written again: at the end of a YAML spec, at the start of a JSON one."""
    yaml_text = next(t for p, t in zip(SOURCES, TEXTS) if p.suffix == ".yaml")
    error = check_text(yaml_text + "".join(f"{key}: 1\n" for key in keys))
    assert error is not None and error.problems[0].message == f"duplicate key {keys[0]!r}", error
    assert error.problems[0].line == len(yaml_text.splitlines()) + 1
    json_text = next(t for p, t in zip(SOURCES, TEXTS) if p.suffix == ".json")
    error = check_text(json_text.replace("{", "{" + "".join(f'"{key}": 1, ' for key in keys), 1), json_syntax=True)
    assert error is not None and error.problems[0].message.startswith("duplicate key"), error


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8))
def test_unicode_area_names_are_refused_or_accepted_cleanly(name):
    doc = copy.deepcopy(DOCS[SOURCES.index(next(p for p in VALID if p.name == "schedule.yaml"))])
    doc["areas"][name] = {"channels": 4, "size": 8}
    bounded(lambda: analyze(load_spec(doc)))


# --- the command line ----------------------------------------------------------------------------------

@settings(max_examples=40)
@given(mutated_texts())
def test_cli_exits_0_or_2_with_a_message(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cli") / "spec.yaml"
    path.write_text(text, errors="surrogateescape")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["validate", str(path)])
    assert code in (0, 2)
    if code == 2:
        assert f"{path}:" in err.getvalue() and "Traceback" not in err.getvalue()
