"""Sets of steps: when an edge fires or an input is injected.

A rule is written as `all` (or `every`), `once` (step 0: inputs only), one
step, a list of steps, or a range `{from: a, to: b, every: k}` (inclusive,
open ends running to the last step). Rules are resolved against a number of
steps, so a model run for more steps than its spec says extends `all` and open
ranges naturally, while listed steps stay where they were written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

WORDS = ("all", "every", "once")


@dataclass(frozen=True)
class StepRule:
    word: str | None = None  # all / every / once
    listed: tuple[int, ...] | None = None
    start: int | None = None
    stop: int | None = None
    every: int = 1
    parts: tuple[StepRule, ...] = ()  # a union (phases that share an edge)

    @staticmethod
    def parse(value: Any) -> StepRule:
        """Parse the written form; raises ValueError with a message for the user."""
        if isinstance(value, StepRule):
            return value
        if isinstance(value, str):
            if value in WORDS:
                return StepRule(word=value)
            raise ValueError(f"unknown step rule {value!r}; expected 'all', 'every', 'once', "
                             "a step, a list of steps or {from, to, every}")
        if _is_int(value):
            if value < 0:
                raise ValueError(f"steps are counted from 0; got {value}")
            return StepRule(listed=(value,))
        if isinstance(value, list):
            if not value:
                raise ValueError("an empty list of steps; leave the field out to fire at every step")
            if not all(_is_int(v) for v in value):
                raise ValueError("a list of steps holds whole numbers only")
            if any(v < 0 for v in value):
                raise ValueError("steps are counted from 0")
            if any(b <= a for a, b in zip(value, value[1:])):
                raise ValueError("list the steps in increasing order, each once")
            return StepRule(listed=tuple(value))
        if isinstance(value, dict):
            unknown = set(value) - {"from", "to", "every"}
            if unknown:
                raise ValueError(f"a step range takes 'from', 'to' and 'every'; not {sorted(map(str, unknown))}")
            for key, v in value.items():
                if not _is_int(v):
                    raise ValueError(f"the range's {key!r} must be a whole number")
            start, stop, every = value.get("from"), value.get("to"), value.get("every", 1)
            if every < 1:
                raise ValueError("the range's 'every' must be at least 1")
            if start is not None and start < 0:
                raise ValueError("steps are counted from 0")
            if start is not None and stop is not None and stop < start:
                raise ValueError(f"the range runs backwards (from {start} to {stop})")
            return StepRule(start=start, stop=stop, every=every)
        raise ValueError("expected 'all', 'every', 'once', a step, a list of steps or {from, to, every}; "
                         f"got {type(value).__name__}")

    def written(self) -> Any:
        """The form a user would write (for canonical dumps)."""
        if self.word is not None:
            return self.word
        if self.listed is not None:
            return self.listed[0] if len(self.listed) == 1 else list(self.listed)
        if self.parts:
            raise ValueError("a union of step rules has no written form")
        out: dict[str, int] = {}
        if self.start is not None:
            out["from"] = self.start
        if self.stop is not None:
            out["to"] = self.stop
        if self.every != 1:
            out["every"] = self.every
        return out

    def resolve(self, last: int, first: int = 1) -> range | tuple[int, ...]:
        """The steps in [first, last] this rule selects, in increasing order.

        `first` is 1 for edges (step 0 belongs to the pre-net) and 0 for inputs.
        """
        if self.parts:
            steps = sorted({s for p in self.parts for s in p.resolve(last, first)})
            return tuple(steps)
        if self.word == "once":
            return (0,) if first <= 0 <= last else ()
        if self.word is not None:
            return range(first, last + 1)
        if self.listed is not None:
            return tuple(s for s in self.listed if first <= s <= last)
        start = first if self.start is None else self.start
        stop = last if self.stop is None else min(self.stop, last)
        steps = range(start, stop + 1, self.every)
        return _clip(steps, first) if start < first else steps

    def earliest(self) -> int | None:
        """The smallest step the rule could ever select (regardless of the horizon)."""
        if self.parts:
            found = [e for e in (p.earliest() for p in self.parts) if e is not None]
            return min(found) if found else None
        if self.word == "once":
            return 0
        if self.word is not None:
            return None
        if self.listed is not None:
            return self.listed[0]
        return self.start

    def beyond(self, last: int) -> tuple[int, ...]:
        """Listed steps past `last`: written, but outside the spec's horizon."""
        if self.parts:
            return tuple(sorted({s for p in self.parts for s in p.beyond(last)}))
        if self.listed is not None:
            return tuple(s for s in self.listed if s > last)
        if self.start is not None and self.start > last:
            return (self.start,)
        return ()

    @staticmethod
    def union(rules: Iterable[StepRule]) -> StepRule:
        rules = tuple(rules)
        return rules[0] if len(rules) == 1 else StepRule(parts=rules)


def _clip(steps: range, first: int) -> range:
    skip = -(-(first - steps.start) // steps.step)  # ceil
    return range(steps.start + skip * steps.step, steps.stop, steps.step)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
