"""`cortexgraph schema` is what editors check specs against: every spec cortexgraph reads passes it, and the
values cortexgraph refuses in the notations it describes (sizes, steps, sharing, norms), it refuses too."""

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from cortexgraph import SpecError
from cortexgraph.bundled import bundled_specs
from cortexgraph.schema import json_schema
from cortexgraph.spec import parse_spec

VALID = sorted((Path(__file__).parent / "specs" / "valid").glob("*.yaml"))
CHECK = jsonschema.Draft202012Validator(json_schema())
BASE = {"cortexgraph": 1, "name": "s", "input": {"channels": 2, "size": 8},
        "areas": {"A": {"channels": 2, "size": 8}, "B": {"channels": 2, "size": 4}}, "inputs": {"A": "once"},
        "steps": 4, "edges": [{"from": "A", "to": "B", "op": "down"}, {"from": "B", "to": "B", "op": "conv"}],
        "readout": {"area": "B", "head": {"classes": 2}}}


def test_the_schema_is_a_json_schema_that_offers_the_shorthands():
    jsonschema.Draft202012Validator.check_schema(json_schema())
    defs = json_schema()["$defs"]
    assert {"enum": ["all", "every", "once"]} in defs["InputRule"]["anyOf"]  # `V1: once`
    assert {"type": "string"} in defs["MatrixEntry"]["anyOf"]  # `V2: down`


@pytest.mark.parametrize("path", [*VALID, *bundled_specs().values()], ids=lambda p: p.stem)
def test_every_spec_cortexgraph_reads_passes_the_schema(path):
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in CHECK.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("where, value, valid", [
    (("areas", "B", "size"), [4, 4], True), (("areas", "B", "size"), 1, True), (("areas", "B", "size"), 0, False),
    (("areas", "B", "size"), "4", False), (("areas", "B", "size"), [1, 1], True),
    (("areas", "B", "size"), [4], False), (("areas", "B", "size"), [4, 0], False),
    (("edges", 1, "at"), "all", True), (("edges", 1, "at"), [1, 3], True), (("edges", 1, "at"), -1, False),
    (("edges", 1, "at"), [], False), (("edges", 1, "at"), "sometimes", False), (("edges", 1, "at"), [-1], False),
    (("edges", 1, "at"), {"from": 1, "to": 3, "every": 2}, True), (("edges", 1, "at"), {"from": -1}, False),
    (("edges", 1, "at"), {"from": 1, "every": 0}, False), (("edges", 1, "at"), {"start": 1}, False),
    (("edges", 1, "share"), "none", True), (("edges", 1, "share"), [[1, 2], [3, 4]], True),
    (("edges", 1, "share"), "weekly", False), (("edges", 1, "share"), [[-1]], False),
    (("edges", 1, "norm"), "shared", True), (("edges", 1, "norm"), {"kind": "layer", "time": "shared"}, True),
    (("edges", 1, "norm"), {"kind": "group", "groups": 0}, False), (("edges", 1, "norm"), {"kind": "odd"}, False),
    (("edges", 1, "norm"), {"kind": "batch", "momentum": 2}, False), (("edges", 1, "norm"), {"eps": 0}, False),
    (("edges", 1, "norm"), 5, False), (("edges", 1, "norm"), {"kind": "batch", "colour": 1}, False),
])
def test_the_schema_refuses_what_cortexgraph_refuses(where, value, valid):
    spec = copy.deepcopy(BASE)
    place = spec
    for key in where[:-1]:
        place = place[key]
    place[where[-1]] = value
    assert CHECK.is_valid(spec) is valid
    if valid:
        parse_spec(spec)
    else:
        with pytest.raises(SpecError):
            parse_spec(spec)
