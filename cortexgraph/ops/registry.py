"""The op registry: what each op name means, without importing torch.

Validation needs to know an op's parameters, which shape changes it can make
and which edges may share its weights; building needs its module class. The
first three live here as plain data, so `cortexgraph validate` stays fast; the
module is named by import path and loaded only when a model is built.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import did_you_mean, known_list
from .op_params import (
    BottleneckParams,
    ConvParams,
    CornetParams,
    Kind,
    NoParams,
    Params,
    PoolParams,
    PoolShape,
    Resample,
    Shape,
    StemConvParams,
    StemPoolParams,
    UpParams,
    Weights,
    _basic_weights,
    _bottleneck_weights,
    _conv_fits,
    _conv_weights,
    _cornet_tie_key,
    _cornet_weights,
    _default_tie_key,
    _no_weights,
    _pool_fits,
    _preact_weights,
    _stem_conv_shape,
    _stem_conv_weights,
    _stem_pool_shape,
    _up_weights,
    param_text,
    resampling,
    size_text,
)

_OP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = {"name", "params", "op"}  # words of the spec's op and cell notations


@dataclass(frozen=True)
class OpDef:
    """What an op name means."""

    name: str
    kind: Kind
    module: str | type  # "package.module:Class", imported when a model is built
    params: type[Params] = NoParams
    resample: tuple[Resample, ...] = ("same", "down")
    keeps_channels: bool = False
    infer: Callable[[Shape, Any], Shape] | None = None  # pre-net ops: output shape
    tie_key: Callable[[OpDef, Shape, Shape, Any], Hashable] = _default_tie_key
    doc: str = ""
    aliases: tuple[str, ...] = field(default=())
    preactivation: bool = False  # its output is neither normalised nor activated (a pre-activation unit)
    count: Callable[[Shape, Shape, Any], Weights] | None = None  # its weights without building it
    layer_norm: bool = True  # its norms sit at its output's size, so a layer norm (over C, H, W) fits
    fits: Callable[[Shape, Shape, Any], tuple[str, str | None] | None] | None = None  # checks of its parameters
    linear: bool = False  # it applies no activation (a linear loop through it warns)
    passes_through: bool = False  # it hands its input on unchanged: no weights, no norm (`identity`)

    def check(self, src: Shape, dst: Shape) -> tuple[str, str | None] | None:
        """Why this op cannot map `src` onto `dst` (message, hint), or None if it can."""
        how = resampling(src, dst)
        if how is None:
            return None  # reported once, for the edge, by the analysis
        if how[0] not in self.resample:
            allowed = " or ".join({"same": "keep the size", "down": "downsample", "up": "upsample"}[r]
                                  for r in self.resample)
            hint = {"up": "use 'up' to upsample", "down": "use 'down' or 'pool' to downsample",
                    "same": "use 'conv' or a residual op between areas of one size"}[how[0]]
            return (f"op {self.name!r} can only {allowed}, but {size_text(src)} -> {size_text(dst)} is "
                    f"{how[0]}sampling", hint)
        if self.keeps_channels and src[0] != dst[0]:
            return (f"op {self.name!r} keeps the channels, but {src[0]} -> {dst[0]} changes them",
                    "use 'conv', 'down' or 'up', which change channels")
        return None

    def load(self) -> type:
        if isinstance(self.module, type):
            return self.module
        path, _, attr = self.module.partition(":")
        return getattr(importlib.import_module(path), attr)


T = TypeVar("T")


class Registry(Generic[T]):
    """Definitions that specs name (one kind of op, or cells): each under its name and its aliases, the
    names checked alike. The one machinery behind `register_op` and `register_cell`."""

    def __init__(self, what: str):
        self.what = what  # "transition op", "pre-net layer", "cell": for messages
        self._defs: dict[str, T] = {}
        self._aliases: dict[str, str] = {}  # every name, aliases included -> its definition's name

    def add(self, name: str, definition: T, aliases: tuple[str, ...] = (), replace: bool = False) -> T:
        for given in (name, *aliases):
            if not _OP_NAME.match(given) or given in _RESERVED:
                raise ValueError(f"{self.what} name {given!r}: use lower-case letters, digits and '_', starting "
                                 f"with a letter (not {', '.join(sorted(_RESERVED))})")
            if given in self._aliases and not replace:
                raise ValueError(f"a {self.what} named {given!r} is registered already (pass replace=True)")
        self._defs[name] = definition
        for given in (name, *aliases):
            self._aliases[given] = name
        return definition

    def remove(self, name: str) -> None:
        canonical = self._aliases.get(name, name)
        self._defs.pop(canonical, None)
        for given in [g for g, c in self._aliases.items() if c == canonical]:
            del self._aliases[given]

    def get(self, name: str) -> T | None:
        canonical = self._aliases.get(name)
        return None if canonical is None else self._defs[canonical]

    def known(self) -> list[str]:
        """Every name, aliases included, sorted."""
        return sorted(self._aliases)


_REGISTRIES: dict[Kind, Registry[OpDef]] = {"transition": Registry("transition op"),
                                            "prenet": Registry("pre-net layer")}


def _add(op: OpDef, replace: bool = False) -> OpDef:
    return _REGISTRIES[op.kind].add(op.name, op, op.aliases, replace)


def register_op(name: str, module: type, *, kind: Kind = "transition", params: type[Params] = NoParams,
                resample: tuple[Resample, ...] = ("same", "down"), keeps_channels: bool = False,
                infer: Callable[[Shape, Any], Shape] | None = None,
                tie_key: Callable[[OpDef, Shape, Shape, Any], Hashable] | None = None,
                aliases: tuple[str, ...] = (), doc: str = "", preactivation: bool = False,
                count: Callable[[Shape, Shape, Any], Weights] | None = None, layer_norm: bool = True,
                fits: Callable[[Shape, Shape, Any], tuple[str, str | None] | None] | None = None,
                linear: bool = False, replace: bool = False) -> OpDef:
    """Register an op so that specs can name it.

    `module` is an `nn.Module` class built as `module(ctx)` (a
    `cortexgraph.ops.layers.OpContext`: shapes, norm policy and steps, and the
    validated parameters as `ctx.params`) and called as `module(x, step)`.
    `params` is a `Params` subclass validating the op's parameters in specs.
    Pre-net ops also give `infer(shape, params) -> shape`. `preactivation=True` says
    the op's output is neither normalised nor activated (a pre-activation residual
    unit): a readout of an area such ops write then normalises and activates first.
    `count(src_shape, dst_shape, params) -> Weights` says how many weights the module
    holds without building it; without it, sizes are measured on the meta device.
    `layer_norm=False` says its norms sit at more than one size (a layer norm, over
    channels, height and width, then does not fit it). `fits(src_shape, dst_shape,
    params) -> (message, hint) | None` checks what the parameters allow between those
    shapes (as the built-in convs check that a pool gives the target's size).
    `linear=True` says it applies no activation (a loop of such edges is warned of).
    """
    if kind == "prenet" and infer is None:
        raise ValueError("a pre-net op needs infer(shape, params) -> shape")
    op = OpDef(name, kind, module, params, tuple(resample), keeps_channels, infer,
               tie_key or _default_tie_key, doc, tuple(aliases), preactivation, count, layer_norm, fits, linear)
    return _add(op, replace=replace)


def unregister_op(name: str, kind: Kind = "transition") -> None:
    _REGISTRIES[kind].remove(name)


class UnknownOp(LookupError):
    def __init__(self, message: str, hint: str | None):
        super().__init__(message)
        self.message, self.hint = message, hint


def known_ops(kind: Kind) -> list[str]:
    return _REGISTRIES[kind].known()


_IMPORT_PATH = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([a-z][a-z0-9_]*)$")


def lookup(kind: Kind, name: str, allow_imports: bool = False) -> OpDef:
    """The op a spec names. `package.module:op` imports package.module (which registers its ops) and
    finds `op` there, but only when the user allows specs to import code."""
    registry = _REGISTRIES[kind]
    found = registry.get(name)
    if found is not None:
        return found
    where = registry.what
    path = _IMPORT_PATH.match(name)
    if path and allow_imports:
        try:
            importlib.import_module(path[1])
        except Exception as exc:  # an import runs arbitrary code; whatever it raises is the user's to see
            raise UnknownOp(f"cannot import {path[1]!r} for op {name!r}: {type(exc).__name__}: {exc}",
                            "check that the module is importable (on PYTHONPATH)") from None
        found = registry.get(path[2])
        if found is None:
            raise UnknownOp(f"{path[1]!r} registers no {where} {path[2]!r}",
                            "it must call cortexgraph.register_op for it when imported")
        return found
    known = known_ops(kind)
    if any(c in name for c in ".:/"):
        hint = ("this looks like an import path; specs never import code unless allowed: pass "
                "--allow-imports (allow_imports=True) to import it, or register the op from Python with "
                "cortexgraph.register_op and name it here")
    else:
        hint = did_you_mean(name, known) or f"known: {known_list(known, 20)}"
    raise UnknownOp(f"unknown {where} {name!r}", hint)


_LAYERS = "cortexgraph.ops.layers"
_BLOCKS = "cortexgraph.ops.blocks"

BUILT_IN = (  # the ops every spec may name; their modules are imported when a model is built
    OpDef("identity", "transition", f"{_LAYERS}:Identity", resample=("same",), keeps_channels=True, count=_no_weights,
          linear=True, passes_through=True, doc="`h`"),
    OpDef("conv", "transition", f"{_LAYERS}:ConvNormAct", ConvParams, count=_conv_weights, fits=_conv_fits,
          doc="conv (strided when smaller), norm, activation"),
    OpDef("down", "transition", f"{_LAYERS}:ConvNormAct", ConvParams, resample=("down",), count=_conv_weights,
          fits=_conv_fits, doc="strided conv, norm, activation"),
    OpDef("up", "transition", f"{_LAYERS}:UpConv", UpParams, resample=("up",), count=_up_weights,
          doc="upsample then conv, or a transposed conv of stride the size ratio (its kernel the ratio, or "
              "`kernel` where given, padded to give the target's size exactly); then norm, activation"),
    OpDef("pool", "transition", f"{_LAYERS}:Pool", PoolParams, resample=("down",), keeps_channels=True,
          count=_no_weights, fits=_pool_fits,
          doc="pooling, strided by the size ratio"),
    OpDef("maxpool", "transition", f"{_LAYERS}:Pool", PoolShape, resample=("down",), keeps_channels=True,
          count=_no_weights, fits=_pool_fits, doc="`pool` of kind max"),
    OpDef("avgpool", "transition", f"{_LAYERS}:Pool", PoolShape, resample=("down",), keeps_channels=True,
          count=_no_weights, fits=_pool_fits, linear=True, doc="`pool` of kind avg"),
    OpDef("basic", "transition", f"{_BLOCKS}:BasicBlock", count=_basic_weights,
          layer_norm=False,
          doc="torchvision's BasicBlock, `act(h + K(h))`, projection shortcut when the shape changes"),
    OpDef("bottleneck", "transition", f"{_BLOCKS}:Bottleneck", BottleneckParams, count=_bottleneck_weights,
          layer_norm=False,
          doc="torchvision's Bottleneck (1x1, 3x3, 1x1 convs), projection shortcut when the shape changes"),
    OpDef("preact", "transition", f"{_BLOCKS}:PreActBlock", aliases=("residual",), preactivation=True,
          count=_preact_weights,
          layer_norm=False,
          doc="the paper's `h + K(h)`: a pre-activation residual unit, K = conv(act(norm(conv(act(norm(h)))))); "
              "projection shortcut when the shape changes"),
    OpDef("cornet", "transition", f"{_BLOCKS}:CornetBlock", CornetParams, tie_key=_cornet_tie_key,
          count=_cornet_weights,
          layer_norm=False,
          doc="CORnet-S's recurrent bottleneck; an entry (shape-changing) edge adds `conv_input` and a strided skip"),
    OpDef("conv", "prenet", f"{_LAYERS}:StemConv", StemConvParams, infer=_stem_conv_shape,
          count=_stem_conv_weights,
          doc="conv, then norm and activation unless switched off"),
    OpDef("maxpool", "prenet", f"{_LAYERS}:StemPool", StemPoolParams, infer=_stem_pool_shape, count=_no_weights,
          doc="max pooling"),
    OpDef("avgpool", "prenet", f"{_LAYERS}:StemPool", StemPoolParams, infer=_stem_pool_shape, count=_no_weights,
          doc="average pooling"),
)
for _op in BUILT_IN:
    _add(_op)


_SHAPES = {("same",): "same size", ("same", "down"): "same size or smaller", ("down",): "smaller", ("up",): "larger"}


def ops_table() -> str:
    """The table of the built-in transition ops in docs/spec.md, made from the registry (a test keeps the docs
    current): each op (its aliases in brackets), the shapes it maps, its parameters with their defaults, and
    what it computes."""
    rows = ["| op | shapes | parameters | what it computes |", "| --- | --- | --- | --- |"]
    for op in (op for op in BUILT_IN if op.kind == "transition"):
        name = f"`{op.name}`" + "".join(f" (`{alias}`)" for alias in op.aliases)
        shapes = _SHAPES.get(op.resample, "/".join(op.resample)) + (", same channels" if op.keeps_channels else "")
        shapes = "same shape" if shapes == "same size, same channels" else shapes
        params = ", ".join(param_text(n, f) for n, f in op.params.model_fields.items())
        rows.append(f"| {name} | {shapes} | {params} | {op.doc} |")
    return "\n".join(rows)
