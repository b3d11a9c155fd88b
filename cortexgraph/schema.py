"""The JSON Schema of specs, for editors that complete and check YAML or JSON."""

from __future__ import annotations

from .ops.registry import known_ops
from .spec import Spec


def json_schema() -> dict:
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cortexgraph spec"
    # Offer the registered op names for completion; other names are still checked by cortexgraph.
    ops = {"transition": known_ops("transition"), "prenet": known_ops("prenet")}
    schema["$defs"]["OpRef"]["anyOf"][0]["examples"] = ops["transition"] + ops["prenet"]
    return schema
