"""`tests/mutate_the_rest.py` plants one-token changes where mutmut cannot: each is in place, and changes the
file into another that still parses."""

import ast
import random

from . import mutate_the_rest as rest


def test_the_candidates_cover_decorated_functions_and_tables_and_each_plants_cleanly():
    everything = rest.candidates()
    kinds = {m.kind for m in everything}
    assert kinds == {"decorated", "table"} and len(everything) > 500
    wheres = {m.where for m in everything}
    assert {"TrainConfig._check", "FIXED", "BUILT_IN", "Plan.reads_out", "evaluate_exits"} <= wheres
    for m in random.Random(0).sample(everything, 40):
        text = (rest.ROOT / m.file).read_text()
        assert rest._in_place(text, m), m.name
        planted = rest._apply(text, m)
        assert planted != text and ast.parse(planted), m.name
