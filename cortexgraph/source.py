"""Text -> plain Python data, remembering where every value was written.

YAML goes through PyYAML's safe loader (the C one where available): a
`!!python/...` tag is an error here, never code that runs. We walk the node
tree ourselves rather than let PyYAML build the data, so that we can record a
`line:col` for every path, refuse duplicate keys instead of keeping the last
one, and bound how much a document may expand through aliases. JSON is parsed
by the json module (its own number and string rules) and located with the same
walk over the equivalent YAML nodes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .collector import collector_paused
from .errors import Loc, Problem, SpecError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")  # files read as training checkpoints, not spec text
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class TextLimits:
    """Bounds on a spec document, against resource exhaustion."""

    max_bytes: int = 4_000_000
    max_nodes: int = 250_000  # values after alias expansion
    max_depth: int = 64


@dataclass
class SourceMap:
    """Where each path of a document was written (1-based line and column)."""

    file: str
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def locate(self, loc: Loc, key: bool = False) -> tuple[int, int]:
        """The mark of `loc`, or of its nearest written ancestor."""
        loc = tuple(loc)
        if key and loc in self.keys:
            return self.keys[loc]
        while loc:
            if loc in self.values:
                return self.values[loc]
            loc = loc[:-1]
        return self.values.get((), (1, 1))

    def place(self, problem: Problem, key: bool = False) -> Problem:
        line, col = self.locate(problem.loc, key=key)
        return problem.at(self.file, line, col)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    """Turns a composed YAML node tree into data plus a SourceMap."""

    def __init__(self, loader: Any, source: SourceMap, limits: TextLimits):
        self.loader = loader
        self.source = source
        self.limits = limits  # the number of values is checked before the walk (`_expanded_size`)
        self.active: set[int] = set()  # nodes on the current path: a cycle is an error

    def fail(self, node: yaml.Node, loc: Loc, message: str, hint: str | None = None):
        line, col = _mark(node)
        raise SpecError([Problem(loc, message, hint, file=self.source.file, line=line, col=col)])

    def walk(self, node: yaml.Node, loc: Loc) -> Any:
        if len(loc) > self.limits.max_depth:
            self.fail(node, (), f"nested more than {self.limits.max_depth} levels deep")
        if id(node) in self.active:
            self.fail(node, loc, "an alias refers to a value that contains it", "recursive data is not a spec")
        self.source.values.setdefault(loc, _mark(node))
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc)
        expected = "seq" if isinstance(node, yaml.SequenceNode) else "map"
        if node.tag != f"tag:yaml.org,2002:{expected}":
            self.fail(node, loc, f"the tag {_short_tag(node.tag)!r} is not allowed",
                      "specs hold plain data; tags that build objects are refused")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.walk(item, loc + (i,)) for i, item in enumerate(node.value)]
            return self.mapping(node, loc)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        try:
            return self.loader.construct_object(node)
        except yaml.constructor.ConstructorError:
            self.fail(node, loc, f"the tag {_short_tag(node.tag)!r} is not allowed",
                      "specs hold plain data; tags that build objects are refused")
        except ValueError:  # Python refuses to read integers of more than 4,300 digits
            self.fail(node, loc, *_too_long(node.value))

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict:
        own: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.update(self.merge_source(value_node, loc))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail(key_node, loc, "a mapping key must be a plain value, not a list or mapping")
            key = self.scalar(key_node, loc)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                self.fail(key_node, loc, f"a mapping key must be a plain value, not {type(key).__name__}")
            if key in first_seen:
                self.fail(key_node, loc + (key,), f"duplicate key {key!r}",
                          f"first written at line {first_seen[key]}; a key may appear once")
            first_seen[key] = key_node.start_mark.line + 1
            self.source.keys[loc + (key,)] = _mark(key_node)
            own[key] = self.walk(value_node, loc + (key,))
        # YAML merge keys (`<<: *base`): the mapping's own keys win.
        return {**merged, **own} if merged else own

    def merge_source(self, node: yaml.Node, loc: Loc) -> dict:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        out: dict[Any, Any] = {}
        for source in reversed(sources):  # earlier sources take precedence
            value = self.walk(source, loc)
            if not isinstance(value, dict):
                self.fail(source, loc, "a merge key ('<<') must refer to a mapping")
            out.update(value)
        return out


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return [part for pair in node.value for part in pair]


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document stands for once aliases are expanded. Each node is visited once
    (aliases share nodes), without recursion: the parser accepts nesting deeper than Python's stack."""
    sizes: dict[int, int] = {}
    active: set[int] = set()  # on the current path: an alias back up it (a cycle) counts 1 here
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            sizes[key] = 1 + sum(sizes.get(id(child), 1) for child in _children(node))
            active.discard(key)
        elif key not in sizes and key not in active:
            if isinstance(node, yaml.ScalarNode):
                sizes[key] = 1
                continue
            active.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _compose(text: str, source: SourceMap) -> tuple[Any, yaml.Node | None]:
    loader = _Loader(text)
    try:
        return loader, loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_yaml_problem(exc, text, source.file)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem((), f"not valid YAML: {exc}", file=source.file)]) from None
    except RecursionError:
        raise SpecError([Problem((), "nested too deeply to read", file=source.file)]) from None


def _yaml_problem(exc: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    """The parser's complaint, placed where the mistake is, with a hint at the usual causes."""
    mark, context = exc.problem_mark or exc.context_mark, exc.context_mark
    what = exc.problem or exc.context or "not valid YAML"
    at = text[mark.index] if mark is not None and mark.index < len(text) else ""
    hint = None
    if "expected ':'" in what and context is not None:  # found only on the next line: the key is above
        mark, hint = context, "a key is followed by ': ', a colon and a space"
    elif "end of stream" in what and "quoted scalar" in (exc.context or "") and context is not None:
        mark, what = context, "a quote opened here is never closed"
    elif at == "\t":
        hint = "YAML indents with spaces, never tabs"
    elif "expected key" in what or "block end" in what or "'-' indicator" in what:
        hint = "check this line's indentation: it must line up with the keys or '- ' items beside it"
    elif "mapping values are not allowed" in what:
        hint = ("a line indented deeper than the one above continues that line's value: line it up with its "
                "neighbours, or quote a value that holds ': '")
    elif "end of stream" in what or ("node content" in what and not text[mark.index:].strip()):
        hint = "the document ends inside [...], {...} or a quote: close it"
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Problem((), f"not valid YAML: {what}", hint, file=file, line=line, col=col)


def _json_problem(exc: json.JSONDecodeError, file: str) -> Problem:
    """json's complaint; a trailing comma (JSON has none) is pointed at, not the bracket after it."""
    before = exc.doc[:exc.pos].rstrip()
    if before.endswith(",") and exc.doc[exc.pos:exc.pos + 1] in "}]":
        comma = len(before) - 1
        line = exc.doc.count("\n", 0, comma) + 1
        return Problem((), "not valid JSON: a comma after the last item", "JSON allows no trailing comma: remove it",
                       file=file, line=line, col=comma - exc.doc.rfind("\n", 0, comma))
    return Problem((), f"not valid JSON: {exc.msg}", file=file, line=exc.lineno, col=exc.colno)


def _json_data(text: str, source: SourceMap) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise SpecError([Problem((), f"duplicate key {key!r}", "a key may appear once", file=source.file)])
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise SpecError([Problem((), f"{name} is not a number a spec can hold", file=source.file)])

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise SpecError([_json_problem(exc, source.file)]) from None
    except SpecError:
        raise  # a duplicate key or NaN, said above
    except ValueError:  # an integer longer than Python reads; json does not say where
        raise _NumberTooLong from None
    except RecursionError:
        raise SpecError([Problem((), "nested too deeply to read", file=source.file)]) from None


def parse_text(text: str | bytes, file: str = "<spec>", json_syntax: bool | None = None,
               limits: TextLimits = TextLimits()) -> tuple[Any, SourceMap]:
    """Parse YAML or JSON text into plain data and a map of where each value was written."""
    source = SourceMap(file)
    if isinstance(text, bytes):
        if len(text) > limits.max_bytes:
            raise SpecError([Problem((), f"the file is larger than {limits.max_bytes:,} bytes", file=file)])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError([Problem((), f"not UTF-8 text (byte {exc.start})", file=file)]) from None
    if len(text) > limits.max_bytes:
        raise SpecError([Problem((), f"the file is larger than {limits.max_bytes:,} bytes", file=file)])
    if json_syntax is None:
        json_syntax = file.endswith(".json")
    with collector_paused():  # many small objects, none in a cycle (see collector.py)
        return _read(text, file, json_syntax, limits, source)


def _read(text: str, file: str, json_syntax: bool, limits: TextLimits, source: SourceMap) -> tuple[Any, SourceMap]:
    try:
        data = _json_data(text, source) if json_syntax else None
    except _NumberTooLong:
        data = None  # the walk below meets the number and says where it is
    # In JSON a tab is only ever whitespace outside strings; YAML refuses tabs there.
    loader, node = _compose(text.replace("\t", " ") if json_syntax else text, source)
    try:
        if node is None:
            raise SpecError([Problem((), "the document is empty", "a spec starts with 'cortexgraph: 1'", file=file)])
        if _expanded_size(node) > limits.max_nodes:
            line, col = _mark(node)
            raise SpecError([Problem((), f"the document expands to more than {limits.max_nodes:,} values",
                                     "aliases that repeat aliases multiply; write the values out",
                                     file=file, line=line, col=col)])
        walked = _Walker(loader, source, limits).walk(node, ())
    finally:
        loader.dispose()
    if json_syntax and data is None:
        raise SpecError([Problem((), *_too_long(""), file=file)])
    return (data if json_syntax else walked), source


def read_file(path: str | Path, limits: TextLimits = TextLimits()) -> tuple[Any, SourceMap]:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise SpecError([Problem((), f"the file is larger than {limits.max_bytes:,} bytes", file=str(path))])
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError([Problem((), f"cannot read the file: {exc.strerror or exc}", file=str(path))]) from None
    return parse_text(raw, str(path), limits=limits)


class _NumberTooLong(Exception):
    pass


def _too_long(digits: str) -> tuple[str, str]:
    most = getattr(sys, "get_int_max_str_digits", lambda: 4300)()
    what = f"a number of {len(digits.lstrip('+-')):,} digits" if digits else "a number too long"
    return f"{what}: Python reads at most {most:,}", "no spec field needs a number this long"


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")
