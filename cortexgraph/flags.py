"""Command-line flags made from pydantic models, so that a setting is declared once (its kind, default,
choices and help) and the command offers exactly what the Python API takes.

A field's description is its flag's help. `json_schema_extra` says where a flag differs from its field:
`positional` (an argument, not a flag), `negate` (a flag that switches the field off, such as `--quiet`
for `progress`; it names the flag with `flag`), `choices`, `metavar`. A field's serialization alias, where
it has one, names its flag (`checkpoint` is `--activation-checkpointing`).
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel], names: Iterable[str] | None = None) -> None:
    """One argument per field of `model` (or those `names`), its value put under the field's name."""
    for name in names if names is not None else model.model_fields:
        field = model.model_fields[name]
        extra: dict[str, Any] = dict(field.json_schema_extra or {})  # type: ignore[arg-type]
        flag = "--" + extra.get("flag", (field.serialization_alias or name).replace("_", "-"))
        kind = _optional_of(field.annotation)
        if extra.get("positional"):
            parser.add_argument(name, metavar=name.upper(), help=field.description)
        elif extra.get("negate"):
            parser.add_argument(flag, dest=name, action="store_false", help=field.description)
        elif kind is bool and field.default is None:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=field.description)
        elif kind is bool:
            parser.add_argument(flag, dest=name, action="store_true", help=field.description)
        else:
            literal = typing.get_origin(kind) is Literal
            choices = typing.get_args(kind) if literal else extra.get("choices")
            convert = None if literal else kind
            optional = {}
            if "const" in extra:  # the value may be left out: then the next word must not be taken unasked
                optional = {"nargs": "?", "const": extra["const"]}
                convert, choices = _one_of(flag, choices), None
            parser.add_argument(flag, dest=name, type=convert, default=field.default, choices=choices,
                                metavar=extra.get("metavar"), help=field.description, **optional)


def given(args: argparse.Namespace, model: type[BaseModel], names: Iterable[str] | None = None) -> dict[str, Any]:
    """The values the flags of `model`'s fields (or those `names`) gave, by field name."""
    return {name: getattr(args, name) for name in (names if names is not None else model.model_fields)}


def _one_of(flag: str, choices: Iterable[str]):
    """A flag's optional value, checked against its choices; a spec written right after the flag (which
    argparse hands it as its value) is named as such."""
    choices = tuple(choices)

    def check(value: str) -> str:
        if value in choices:
            return value
        spec = bool(value) and (Path(value).suffix in (".yaml", ".yml", ".json") or "/" in value or _exists(value))
        hint = f"; a word right after {flag} is read as its value: give the spec before {flag}" if spec else ""
        raise argparse.ArgumentTypeError(f"invalid choice: {value} (choose from {', '.join(choices)}){hint}")
    return check


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except OSError:  # a name too long for the file system, say: no such file
        return False


def _optional_of(annotation: Any) -> Any:
    """`int` for `int | None`; any other annotation as it is."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(t for t in typing.get_args(annotation) if t is not type(None))
    return annotation
