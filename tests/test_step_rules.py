"""Step rules (`at`, input rules): every refusal with its message, and `resolve` against a brute-force
reading of the written rule, step by step."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cortexgraph.step_rules import StepRule


@pytest.mark.parametrize("written, message", [
    ("sometimes", "unknown step rule 'sometimes'; expected 'all', 'every', 'once', a step"),
    (-1, "steps are counted from 0; got -1"),
    ([], "an empty list of steps; leave the field out to fire at every step"),
    ([1, "2"], "a list of steps holds whole numbers only"),
    ([1, True], "a list of steps holds whole numbers only"),
    ([-1, 2], "steps are counted from 0"),
    ([3, 3], "list the steps in increasing order, each once"),
    ([3, 2], "list the steps in increasing order, each once"),
    ({"from": 1, "until": 3}, "a step range takes 'from', 'to' and 'every'; not ['until']"),
    ({"from": 1.5}, "the range's 'from' must be a whole number"),
    ({"every": 0}, "the range's 'every' must be at least 1"),
    ({"from": -2}, "steps are counted from 0"),
    ({"from": 4, "to": 2}, "the range runs backwards (from 4 to 2)"),
    (2.5, "expected 'all', 'every', 'once', a step, a list of steps or {from, to, every}; got float"),
])
def test_every_refusal_says_what_is_wrong(written, message):
    with pytest.raises(ValueError) as caught:
        StepRule.parse(written)
    assert str(caught.value).startswith(message)


def selects(written, t: int, first: int) -> bool:
    """The written rule, read on its own: does it select step t (of the steps from `first` on)?"""
    if written in ("all", "every"):
        return True
    if written == "once":
        return t == 0
    if isinstance(written, int):
        return t == written
    if isinstance(written, list):
        return t in written
    start = written.get("from", first)  # an open range starts at the first step there is
    stop, every = written.get("to"), written.get("every", 1)
    return t >= start and (stop is None or t <= stop) and (t - start) % every == 0


rules = st.one_of(
    st.sampled_from(["all", "every", "once"]),
    st.integers(0, 12),
    st.lists(st.integers(0, 12), min_size=1, max_size=6, unique=True).map(sorted),
    st.fixed_dictionaries({}, optional={"from": st.integers(0, 12), "to": st.integers(0, 12),
                                        "every": st.integers(1, 4)}).filter(
        lambda d: "from" not in d or "to" not in d or d["to"] >= d["from"]),
)


@given(rules, st.integers(0, 12), st.sampled_from([0, 1]))
@example({"from": 0, "every": 3}, 7, 1)  # a range from step 0 asked from step 1: its first step is 3
@example({"to": 5, "every": 2}, 9, 1)
def test_resolve_selects_what_the_written_rule_says(written, last, first):
    rule = StepRule.parse(written)
    assert list(rule.resolve(last, first)) == [t for t in range(first, last + 1) if selects(written, t, first)]
    assert StepRule.parse(rule.written()) == rule  # the canonical form reads back as the same rule


@given(rules)
def test_the_canonical_form_is_what_a_user_writes(written):
    expected = written
    if isinstance(written, list) and len(written) == 1:
        expected = written[0]  # one listed step is written as the step
    elif isinstance(written, dict):
        expected = {k: v for k, v in written.items() if (k, v) != ("every", 1)}
    assert StepRule.parse(written).written() == expected


def test_a_union_fires_at_the_steps_of_its_parts_and_has_no_written_form():
    one = StepRule.parse([2])
    assert StepRule.union([one]) is one
    both = StepRule.union([StepRule.parse(1), StepRule.parse({"from": 3, "every": 2})])
    assert tuple(both.resolve(8)) == (1, 3, 5, 7) and both.earliest() == 1
    with pytest.raises(ValueError, match="^a union of step rules has no written form$"):
        both.written()
