"""What the built-in ops take and what they make, as plain data (no torch): their parameters (`Params`), the
shape changes they accept, the weights they hold (counted without building them) and which edges may share
their weights. The registry (`registry.py`) names them."""

from __future__ import annotations

import types
import typing
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from .norm_spec import NormSetting, NormSpec, stem_norm

if TYPE_CHECKING:
    from .registry import OpDef

Shape = tuple[int, int, int]  # channels, height, width
Kind = Literal["transition", "prenet"]
Resample = Literal["same", "down", "up"]
Activation = Literal["relu", "gelu", "silu", "tanh", "elu", "none"]



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
    pool: PoolAfter | None = Field(None, description="pools after the norm and activation")
    pool_input: PoolAfter | None = Field(None, description="pools the source first")

    _kernel = field_validator("kernel")(_odd)


class UpParams(Params):
    """`up`: resize then a conv of `kernel`, or one transposed conv of stride the size ratio (its kernel the
    ratio, or `kernel` where given, padded to give exactly the target's size, as BLT's top-down convs)."""

    mode: Literal["nearest", "bilinear", "transpose"] = Field("nearest", description="or bilinear, transpose")
    kernel: int = 3

    _kernel = field_validator("kernel")(_odd)

    def transpose_kernel(self, factor: int) -> int:
        return self.kernel if "kernel" in self.model_fields_set else factor


class PoolShape(Params):
    """`maxpool`, `avgpool`: the stride is the size ratio; the kernel is the stride unless given, with
    `padding` on each side (CORnet-Z's 3x3 max-pool of stride 2: kernel 3, padding 1)."""

    kernel: PositiveInt | None = Field(None, description="default: the stride")
    padding: int = Field(default=0, ge=0)


class PoolParams(PoolShape):
    """`pool`: max or average pooling, as `maxpool` and `avgpool`."""

    kind: Literal["max", "avg"] = Field("max", description="or avg")


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
        return (f"pooling {size_text(src)} with kernel {kernel}, stride {stride} (the size ratio) and padding "
                f"{p.padding} gives {got[0]}x{got[1]}, not {size_text(dst)}", "adjust the kernel or the padding")
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
                f"({size_text(src)} -> {size_text(dst)})", "the conv strides by the ratio over the pools' strides")
    size = list(src[1:])
    if p.pool_input:
        size = [_pooled(s, p.pool_input.kernel, p.pool_input.stride, p.pool_input.padding) for s in size]
    size = [-(-s // (factor // pools)) for s in size]
    if p.pool:
        size = [_pooled(s, p.pool.kernel, p.pool.stride, p.pool.padding) for s in size]
    if tuple(size) != dst[1:]:
        return (f"the pools and a conv of stride {factor // pools} give {size[0]}x{size[1]}, not {size_text(dst)}",
                "adjust the pools' kernel, stride or padding")
    return None


class BottleneckParams(Params):
    width: PositiveInt | None = Field(None, description="default: out channels / 4, torchvision's expansion")
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


def size_text(shape: Shape) -> str:
    return f"{shape[1]}x{shape[2]}"


def param_text(name: str, field: Any) -> str:
    """A parameter as the docs' tables show it: `name: default` (its description)."""
    default = field.default
    if field.is_required() or default is None:
        text = f"`{name}`"
    else:
        shown = (str(default).lower() if isinstance(default, bool) else default.time if hasattr(default, "time")
                 else f"{default:g}" if isinstance(default, float) else default)
        text = f"`{name}: {shown}`"
    return text + (f" ({field.description})" if field.description else "")

