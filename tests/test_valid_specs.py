"""Valid specs, bundled and under tests/specs/valid, validate and round-trip."""

import json

import pytest
import yaml

from cortexgraph import analyze, load_spec
from cortexgraph.bundled import bundled_specs
from cortexgraph.spec import parse_spec

from .conftest import VALID

ALL_VALID = VALID + list(bundled_specs().values())


@pytest.mark.parametrize("path", ALL_VALID, ids=lambda p: p.stem)
def test_valid_spec_validates_without_warnings(path):
    analysis = analyze(load_spec(path))
    assert analysis.warnings == []


@pytest.mark.parametrize("path", ALL_VALID, ids=lambda p: p.stem)
def test_round_trip_through_canonical_dict_and_yaml_is_identity(path):
    spec = load_spec(path)
    again = load_spec(spec.to_yaml())
    assert again == spec
    assert parse_spec(json.loads(json.dumps(spec.to_dict()))) == spec
    assert again.to_dict() == spec.to_dict()


def test_round_trip_keeps_what_the_user_wrote():
    spec = load_spec(VALID[0].parent / "edge-list.yaml")
    dumped = yaml.safe_load(spec.to_yaml())
    edges = dumped["edges"]
    assert edges[2]["share"] == [[2, 3], [4, 5, 6]]
    assert edges[3]["at"] == {"from": 2, "to": 6, "every": 2}
    assert edges[1]["op"] == {"down": {"kernel": 3}}
    assert dumped["readout"]["step"] == [5, 6]


def test_bundled_specs_are_found_by_name():
    assert {"torchvision/resnet18", "cornet/cornet-s", "liao2016/frnn4-imagenet"} <= set(bundled_specs())
    assert load_spec("torchvision/resnet18").name == "resnet18"
    assert load_spec("torchvision/resnet18.yaml").name == "resnet18"


def test_every_field_of_the_edge_list_is_understood():
    analysis = analyze(load_spec(VALID[0].parent / "edge-list.yaml"))
    edges = {e.name: e for e in analysis.edges}
    assert edges["V2->V2"].share == ((2, 3), (4, 5, 6))
    assert edges["V2->V4"].steps == (2, 4, 6)
    assert edges["V2->V4"].norm.policy == "none"
    assert edges["V4->V2"].delay == 2 and edges["V4->V2"].norm.policy == "shared"
    assert edges["V2-V4-conv"].share == "none"
    assert edges["V4->V4"].tie == "V4-self"
    assert edges["V4-self"].steps == (6,)
    assert edges["V1->V1"].steps == tuple(range(1, 7))
    assert analysis.spec.readout_steps == (5, 6)
