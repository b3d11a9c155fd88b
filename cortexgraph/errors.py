"""Problems found in a spec, and the one exception that carries them.

Every problem points into the text the user wrote (`file:line:col`) and into
the spec's structure (`edges[3].to`), says what is wrong and, where it can,
how to fix it. Errors stop a spec; warnings are reported and let it through.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

Loc = tuple[str | int, ...]
Severity = Literal["error", "warning"]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(loc: Loc) -> str:
    """`('edges', 3, 'to')` -> `edges[3].to`; odd keys are quoted: `areas["a b"]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(document)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in a spec."""

    loc: Loc
    message: str
    hint: str | None = None
    severity: Severity = "error"
    file: str = "<spec>"
    line: int = 1
    col: int = 1

    @property
    def path(self) -> str:
        return format_path(self.loc)

    def __str__(self) -> str:
        kind = "warning: " if self.severity == "warning" else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {kind}{self.message}{hint}"

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }

    def at(self, file: str, line: int, col: int) -> Problem:
        return replace(self, file=file, line=line, col=col)


class SpecError(ValueError):
    """A spec that cannot be used; carries every problem found, errors first."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.severity != "error", p.file, p.line, p.col))
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def did_you_mean(word: object, known: Iterable[str]) -> str | None:
    """A hint naming the closest known word, if one is close enough."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def known_list(known: Iterable[str], limit: int = 12) -> str:
    names = sorted(known)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
