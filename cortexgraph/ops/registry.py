"""The op registry: what each op name means, without importing torch.

Validation needs to know an op's parameters, which shape changes it can make
and which edges may share its weights; building needs its module class. The
first three live here as plain data, so `cortexgraph validate` stays fast; the
module is named by import path and loaded only when a model is built.
"""

from __future__ import annotations

import importlib
import re
import types
import typing
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from ..errors import did_you_mean, known_list
from .norm_spec import NormSetting, NormSpec, stem_norm

Shape = tuple[int, int, int]  # channels, height, width
Kind = Literal["transition", "prenet"]
Resample = Literal["same", "down", "up"]
Activation = Literal["relu", "gelu", "silu", "tanh", "elu", "none"]

_OP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = {"name", "params", "op"}  # words of the spec's op and cell notations


class Params(BaseModel):
    """Base for an op's parameters: strict, and no unknown keys.

    A tuple parameter is written as a list (YAML and JSON have no tuples), and strict
    validation alone would refuse every list; so a list becomes a tuple where the field
    takes one. Nothing else is coerced.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _lists_as_tuples(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = {f.alias or n: f.annotation for n, f in cls.model_fields.items()}
        return {k: tuple(v) if isinstance(v, list) and _takes_tuple(fields.get(k)) else v for k, v in data.items()}


def _takes_tuple(annotation: Any) -> bool:
    """`tuple[...]`, or a union with one (`tuple[int, int] | None`)."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    members = typing.get_args(annotation) if union else ()
    return any(typing.get_origin(t) is tuple for t in (annotation, *members))


class NoParams(Params):
    pass


def _odd(value: int) -> int:
    if value < 1 or value % 2 == 0:
        raise ValueError(f"the kernel must be an odd size (1, 3, 5, ...) so sizes divide exactly; got {value}")
    return value


class PoolAfter(Params):
    """Pooling after a conv (CORnet-Z's max-pool 3/2/1): the conv's stride is the size ratio over `stride`."""

    kind: Literal["max", "avg"] = "max"
    kernel: PositiveInt = 2
    stride: PositiveInt = 2
    padding: int = Field(default=0, ge=0)


class ConvParams(Params):
    kernel: int = 3
    bias: bool = False
    pool: PoolAfter | None = None  # pool after norm and activation
    pool_input: PoolAfter | None = None  # pool the source first (BLT's bottom-up: max-pool 2x2, then the conv)

    _kernel = field_validator("kernel")(_odd)


class UpParams(Params):
    """`up`: resize then a conv of `kernel`, or one transposed conv of stride the size ratio (its kernel the
    ratio, or `kernel` where given, padded to give exactly the target's size, as BLT's top-down convs)."""

    mode: Literal["nearest", "bilinear", "transpose"] = "nearest"
    kernel: int = 3

    _kernel = field_validator("kernel")(_odd)

    def transpose_kernel(self, factor: int) -> int:
        return self.kernel if "kernel" in self.model_fields_set else factor


class PoolShape(Params):
    """`maxpool`, `avgpool`: the stride is the size ratio; the kernel is the stride unless given, with
    `padding` on each side (CORnet-Z's 3x3 max-pool of stride 2: kernel 3, padding 1)."""

    kernel: PositiveInt | None = None
    padding: int = Field(default=0, ge=0)


class PoolParams(PoolShape):
    """`pool`: max or average pooling, as `maxpool` and `avgpool`."""

    kind: Literal["max", "avg"] = "max"


def _pooled(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _pool_fits(src: Shape, dst: Shape, p: PoolShape) -> tuple[str, str | None] | None:
    how = resampling(src, dst)
    stride = how[1] if how and how[0] == "down" else 1
    kernel = p.kernel or stride
    if 2 * p.padding > kernel:
        return f"padding {p.padding} is more than half the kernel ({kernel})", "pad at most kernel // 2"
    got = (_pooled(src[1], kernel, stride, p.padding), _pooled(src[2], kernel, stride, p.padding))
    if got != dst[1:]:
        return (f"pooling {_size(src)} with kernel {kernel}, stride {stride} (the size ratio) and padding "
                f"{p.padding} gives {got[0]}x{got[1]}, not {_size(dst)}", "adjust the kernel or the padding")
    return None


def _conv_fits(src: Shape, dst: Shape, p: ConvParams) -> tuple[str, str | None] | None:
    """A conv followed by a pool: the conv takes the part of the size ratio the pool does not."""
    if p.pool is None and p.pool_input is None:
        return None
    how = resampling(src, dst)
    factor = how[1] if how and how[0] == "down" else 1
    pools = p.pool_input.stride if p.pool_input else 1
    pools *= p.pool.stride if p.pool else 1
    if factor % pools:
        return (f"the pools' stride {pools} does not divide the size ratio {factor} "
                f"({_size(src)} -> {_size(dst)})", "the conv strides by the ratio over the pools' strides")
    size = list(src[1:])
    if p.pool_input:
        size = [_pooled(s, p.pool_input.kernel, p.pool_input.stride, p.pool_input.padding) for s in size]
    size = [-(-s // (factor // pools)) for s in size]
    if p.pool:
        size = [_pooled(s, p.pool.kernel, p.pool.stride, p.pool.padding) for s in size]
    if tuple(size) != dst[1:]:
        return (f"the pools and a conv of stride {factor // pools} give {size[0]}x{size[1]}, not {_size(dst)}",
                "adjust the pools' kernel, stride or padding")
    return None


class BottleneckParams(Params):
    width: PositiveInt | None = None  # default: out channels / 4, as torchvision's expansion
    groups: PositiveInt = 1


class CornetParams(Params):
    scale: PositiveInt = 4


class StemConvParams(Params):
    out: PositiveInt
    kernel: PositiveInt = 3
    stride: PositiveInt = 1
    padding: int | None = Field(default=None, ge=0)  # default: kernel // 2
    bias: bool = False
    # true: a batch norm; false: none; or a kind (`group`, `layer`, `instance`) or a mapping (its groups, eps,
    # momentum). The pre-net runs once, so a norm's `time` is moot.
    norm: bool | NormSetting = True
    act: bool | Activation = True  # true: the spec's activation; or one by name (`relu` where the spec's is none)

    @property
    def norm_kind(self) -> NormSpec:
        return stem_norm(self.norm)


class StemPoolParams(Params):
    kernel: PositiveInt
    stride: PositiveInt | None = None  # default: the kernel
    padding: int = Field(default=0, ge=0)


def resampling(src: Shape, dst: Shape) -> tuple[Resample, int] | None:
    """How `dst`'s size relates to `src`'s: same, down or up by one integer factor."""
    (_, h, w), (_, h2, w2) = src, dst
    if (h, w) == (h2, w2):
        return "same", 1
    if h % h2 == 0 and w % w2 == 0 and h // h2 == w // w2:
        return "down", h // h2
    if h2 % h == 0 and w2 % w == 0 and h2 // h == w2 // w:
        return "up", h2 // h
    return None


@dataclass(frozen=True)
class Weights:
    """What one set of an op's weights holds, counted without building it (`OpDef.count`)."""

    tied: int = 0  # parameters that a `tie` borrows from the edge it ties to
    own: int = 0  # parameters that stay an edge's own under a tie (CORnet-S's conv_input and skip)
    norm_channels: int = 0  # channels its norms normalise at one step (2 parameters and 2 statistics each)


def _conv_weights(src: Shape, dst: Shape, p: ConvParams) -> Weights:
    return Weights(src[0] * dst[0] * p.kernel**2 + (dst[0] if p.bias else 0), norm_channels=dst[0])


def _up_weights(src: Shape, dst: Shape, p: UpParams) -> Weights:
    kernel = p.transpose_kernel(dst[1] // src[1]) if p.mode == "transpose" else p.kernel
    return Weights(src[0] * dst[0] * kernel**2, norm_channels=dst[0])


def _basic_weights(src: Shape, dst: Shape, p: Params) -> Weights:
    cin, cout, projects = src[0], dst[0], src != dst
    return Weights(9 * cin * cout + 9 * cout * cout + projects * cin * cout, norm_channels=(2 + projects) * cout)


def _bottleneck_weights(src: Shape, dst: Shape, p: BottleneckParams) -> Weights:
    cin, cout, projects = src[0], dst[0], src != dst
    width = p.width or cout // 4
    convs = cin * width + 9 * width * (width // p.groups) + width * cout + projects * cin * cout
    return Weights(convs, norm_channels=2 * width + (1 + projects) * cout)


def _preact_weights(src: Shape, dst: Shape, p: Params) -> Weights:
    cin, cout = src[0], dst[0]
    return Weights(9 * cin * cout + 9 * cout * cout + (src != dst) * cin * cout, norm_channels=cin + cout)


def _cornet_weights(src: Shape, dst: Shape, p: CornetParams) -> Weights:
    c, wide, entry = dst[0], dst[0] * p.scale, src != dst
    return Weights(c * wide + 9 * wide * wide + wide * c, entry * (src[0] * c + c * c),
                   2 * wide + c + entry * c)


def _stem_conv_weights(src: Shape, dst: Shape, p: StemConvParams) -> Weights:
    return Weights(own=src[0] * p.out * p.kernel**2 + (p.out if p.bias else 0),
                   norm_channels=p.out if p.norm_kind.kind != "none" else 0)


def _no_weights(src: Shape, dst: Shape, p: Params) -> Weights:
    return Weights()


def _default_tie_key(op: OpDef, src: Shape, dst: Shape, params: Params) -> Hashable:
    return (op.name, params, src[0], dst[0], resampling(src, dst))


def _cornet_tie_key(op: OpDef, src: Shape, dst: Shape, params: Params) -> Hashable:
    # CORnet-S ties only the bottleneck (conv1-3), which runs at the output's channels.
    return (op.name, params.scale, dst[0])


def _stem_conv_shape(shape: Shape, p: StemConvParams) -> Shape:
    pad = p.kernel // 2 if p.padding is None else p.padding
    return (p.out, *((s + 2 * pad - p.kernel) // p.stride + 1 for s in shape[1:]))


def _stem_pool_shape(shape: Shape, p: StemPoolParams) -> Shape:
    stride = p.stride or p.kernel
    return (shape[0], *((s + 2 * p.padding - p.kernel) // stride + 1 for s in shape[1:]))


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
            return f"op {self.name!r} can only {allowed}, but {_size(src)} -> {_size(dst)} is {how[0]}sampling", hint
        if self.keeps_channels and src[0] != dst[0]:
            return (f"op {self.name!r} keeps the channels, but {src[0]} -> {dst[0]} changes them",
                    "use 'conv', 'down' or 'up', which change channels")
        return None

    def load(self) -> type:
        if isinstance(self.module, type):
            return self.module
        path, _, attr = self.module.partition(":")
        return getattr(importlib.import_module(path), attr)


def _size(shape: Shape) -> str:
    return f"{shape[1]}x{shape[2]}"


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
                replace: bool = False) -> OpDef:
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
    """
    if kind == "prenet" and infer is None:
        raise ValueError("a pre-net op needs infer(shape, params) -> shape")
    op = OpDef(name, kind, module, params, tuple(resample), keeps_channels, infer,
               tie_key or _default_tie_key, doc, tuple(aliases), preactivation, count, layer_norm, fits)
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

for _op in (
    OpDef("identity", "transition", f"{_LAYERS}:Identity", resample=("same",), keeps_channels=True, count=_no_weights,
          doc="passes the source through unchanged"),
    OpDef("conv", "transition", f"{_LAYERS}:ConvNormAct", ConvParams, count=_conv_weights, fits=_conv_fits,
          doc="conv-norm-activation; strided when the target is smaller (then pooled, with `pool`)"),
    OpDef("down", "transition", f"{_LAYERS}:ConvNormAct", ConvParams, resample=("down",), count=_conv_weights,
          fits=_conv_fits, doc="strided conv-norm-activation into a smaller area (then pooled, with `pool`)"),
    OpDef("up", "transition", f"{_LAYERS}:UpConv", UpParams, resample=("up",), count=_up_weights,
          doc="upsampling (nearest, bilinear or transposed conv) then norm-activation, into a larger area"),
    OpDef("pool", "transition", f"{_LAYERS}:Pool", PoolParams, resample=("down",), keeps_channels=True,
          count=_no_weights, fits=_pool_fits,
          doc="max or average pooling into a smaller area with the same channels"),
    OpDef("maxpool", "transition", f"{_LAYERS}:Pool", PoolShape, resample=("down",), keeps_channels=True,
          count=_no_weights, fits=_pool_fits, doc="max pooling (`pool` of kind max)"),
    OpDef("avgpool", "transition", f"{_LAYERS}:Pool", PoolShape, resample=("down",), keeps_channels=True,
          count=_no_weights, fits=_pool_fits, doc="average pooling (`pool` of kind avg)"),
    OpDef("basic", "transition", f"{_BLOCKS}:BasicBlock", count=_basic_weights,
          layer_norm=False,
          doc="torchvision's BasicBlock: act(h + K(h)), projection shortcut where the shape changes"),
    OpDef("bottleneck", "transition", f"{_BLOCKS}:Bottleneck", BottleneckParams, count=_bottleneck_weights,
          layer_norm=False,
          doc="torchvision's Bottleneck (1x1, 3x3, 1x1), projection shortcut where the shape changes"),
    OpDef("preact", "transition", f"{_BLOCKS}:PreActBlock", aliases=("residual",), preactivation=True,
          count=_preact_weights,
          layer_norm=False,
          doc="pre-activation residual unit: h + K(h), K = conv(act(norm(conv(act(norm(h))))))"),
    OpDef("cornet", "transition", f"{_BLOCKS}:CornetBlock", CornetParams, tie_key=_cornet_tie_key,
          count=_cornet_weights,
          layer_norm=False,
          doc="CORnet-S's recurrent bottleneck; an entry edge adds conv_input and a strided skip"),
    OpDef("conv", "prenet", f"{_LAYERS}:StemConv", StemConvParams, infer=_stem_conv_shape,
          count=_stem_conv_weights,
          doc="conv, then norm and activation unless switched off"),
    OpDef("maxpool", "prenet", f"{_LAYERS}:StemPool", StemPoolParams, infer=_stem_pool_shape, count=_no_weights,
          doc="max pooling"),
    OpDef("avgpool", "prenet", f"{_LAYERS}:StemPool", StemPoolParams, infer=_stem_pool_shape, count=_no_weights,
          doc="average pooling"),
):
    _add(_op)
