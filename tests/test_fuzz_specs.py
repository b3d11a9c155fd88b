"""Random mutations of valid specs raise nothing but the project's spec error.

A bounded run is part of `make test`; the profile `fuzz` (HYPOTHESIS_PROFILE=fuzz) runs longer.
"""

import copy
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cortexgraph import SpecError, analyze, load_spec
from cortexgraph.bundled import bundled_specs
from cortexgraph.source import parse_text
from cortexgraph.spec import parse_spec

from .conftest import VALID

settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SOURCES = [p for p in VALID + list(bundled_specs().values())]
TEXTS = [p.read_text() for p in SOURCES]
DOCS = [yaml.safe_load(t) for t in TEXTS]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-3, 12), st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["V1", "V2", "V4", "IT", "S1", "input", "residual", "down", "up", "conv", "once", "all",
                     "every", "time", "none", "per_step", "shared", "V1->V2", "a.b", "mod:cls", "", "é",
                     "\u202e", "x" * 300]),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=6), scalars.filter(
        lambda v: isinstance(v, (str, int)) and not isinstance(v, bool))), inner, max_size=4)), max_leaves=8)


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


def check(doc):
    try:
        analyze(load_spec(doc) if isinstance(doc, dict) else parse_spec(doc))
    except SpecError as exc:
        assert exc.problems and all(p.message for p in exc.problems)


@given(mutated_docs())
def test_mutated_specs_raise_only_spec_errors(doc):
    check(doc)


@st.composite
def mutated_texts(draw):
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(["", ":", "- ", "{", "}", "[", "]", "&a ", "*a", "!!python/name:os.system ",
                                      "\n  ", "\t", "'", '"', "<<: ", ",", "0", "99999999999999999999", "é"]))
        cut = draw(st.integers(0, 3))
        text = text[:i] + piece + text[i + cut:]
    return text


@given(mutated_texts(), st.booleans())
def test_mutated_text_raises_only_spec_errors(text, as_json):
    try:
        data, source = parse_text(text, "fuzz.json" if as_json else "fuzz.yaml")
        analyze(parse_spec(data, source))
    except SpecError as exc:
        assert exc.problems and all(p.line >= 1 and p.col >= 1 for p in exc.problems)
