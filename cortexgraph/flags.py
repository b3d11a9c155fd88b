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
from pydantic.fields import FieldInfo


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel], names: Iterable[str] | None = None,
              unset: str | None = None) -> None:
    """One argument per field of `model` (or those `names`), its value put under the field's name. With
    `unset`, a flag not given is None (its default comes from elsewhere: `unset` says where, with the
    field's own default as `{default}`)."""
    for name in names if names is not None else model.model_fields:
        field = model.model_fields[name]
        extra: dict[str, Any] = dict(field.json_schema_extra or {})  # type: ignore[arg-type]
        if unset is not None:
            field = _unset(field, unset)
        flag = "--" + extra.get("flag", (field.serialization_alias or name).replace("_", "-"))
        kind = _optional_of(field.annotation)
        if extra.get("positional"):
            parser.add_argument(name, action=_Store, metavar=name.upper(), help=field.description)
        elif extra.get("negate"):
            parser.add_argument(flag, dest=name, action=_Switch, const=False, help=field.description)
        elif kind is bool and field.default is None:
            parser.add_argument(flag, dest=name, action=_Either, help=field.description)
        elif kind is bool:
            parser.add_argument(flag, dest=name, action=_Switch, const=True, help=field.description)
        else:
            literal = typing.get_origin(kind) is Literal
            choices = typing.get_args(kind) if literal else extra.get("choices")
            convert = None if literal else kind
            optional = {}
            if "const" in extra:  # the value may be left out: then the next word must not be taken unasked
                optional = {"nargs": "?", "const": extra["const"]}
                convert, choices = _one_of(flag, choices), None
            parser.add_argument(flag, dest=name, action=_Store, type=convert, default=field.default,
                                choices=choices, metavar=extra.get("metavar"), help=field.description, **optional)


def _unset(field: FieldInfo, where: str) -> FieldInfo:
    """`field` with no default, its help saying where the default comes from instead."""
    help_text = field.description or ""
    cut = help_text.rfind(" (default: ")
    if cut != -1 and help_text.endswith(")"):
        help_text = help_text[:cut]
    note = where.format(default=field.default) if field.default is not None else \
        where.split(",")[0] + ", else as `train` chooses"
    copy = FieldInfo.merge_field_infos(field, default=None, description=f"{help_text} (default: {note})")
    copy.annotation = field.annotation
    return copy


def given(args: argparse.Namespace, model: type[BaseModel], names: Iterable[str] | None = None) -> dict[str, Any]:
    """The values the flags of `model`'s fields (or those `names`) gave, by field name."""
    return {name: getattr(args, name) for name in (names if names is not None else model.model_fields)}


def given_only(args: argparse.Namespace, model: type[BaseModel], names: Iterable[str] | None = None) -> dict[str, Any]:
    """The values of the flags of `model`'s fields (or those `names`) that the command line gave, by field name:
    a flag given counts, whatever its value (its default's too); one left out is left out, so that `model`
    takes its default and its `model_fields_set` holds what the user said (as `--resume` needs)."""
    said = getattr(args, GIVEN, frozenset())
    return {name: value for name, value in given(args, model, names).items() if name in said}


def made_from(args: argparse.Namespace, model: type[BaseModel]):
    """`model` made from the flags given (`given_only`), so its `model_fields_set` holds exactly those (a
    model whose validators fill fields in leaves them unset: TrainConfig does)."""
    return model(**given_only(args, model))


def flag_words(model: type[BaseModel], name: str, value: Any) -> str:
    """The words that give field `name` of `model` the value `value` on the command line (`--quiet` for
    `progress` False, `--no-amp` for `amp` False, `no --clip-grad` for None)."""
    field = model.model_fields[name]
    extra: dict[str, Any] = dict(field.json_schema_extra or {})  # type: ignore[arg-type]
    flag = "--" + extra.get("flag", (field.serialization_alias or name).replace("_", "-"))
    if extra.get("negate"):  # the flag switches the field off
        return flag if value is False else f"no {flag}"
    if isinstance(value, bool):
        return flag if value else ("--no-" + flag[2:] if field.default is None else f"no {flag}")
    return f"no {flag}" if value is None else f"{flag} {value}"


# The flags given, noted on the parsed namespace by the actions below (argparse's own, that also note it; a
# subcommand's namespace is copied onto the main one with it): a flag given with its default value is given.
GIVEN = "flags_given"


def _note(namespace: argparse.Namespace, dest: str) -> None:
    setattr(namespace, GIVEN, getattr(namespace, GIVEN, frozenset()) | {dest})


class _Store(argparse.Action):
    """argparse's `store`, noting the flag as given."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        _note(namespace, self.dest)


class _Switch(argparse.Action):
    """argparse's `store_true` (`const` True) or `store_false` (`const` False), noting the flag as given."""

    def __init__(self, option_strings, dest, const: bool, default: bool | None = None, help=None):
        super().__init__(option_strings, dest, nargs=0, const=const, default=not const if default is None else default,
                         help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const)
        _note(namespace, self.dest)


class _Either(argparse.BooleanOptionalAction):
    """`--flag` or `--no-flag`, noting the flag as given."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _note(namespace, self.dest)


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
