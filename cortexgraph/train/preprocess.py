"""What happens to an image between its file and the model: its channels made the spec's, its size the
spec's, augmented (training only) and normalised, one image at a time when the data loader asks for it.

The settings, each a `TrainConfig` field and a flag of `cortexgraph train`:

- `augment`: `none`; `flip` (random horizontal flips); `crop` (random crops of the image padded by an
  eighth of its size, and flips: CIFAR's recipe); `imagenet` (random resized crops and flips; test images
  resized to 256/224 of the size and centre-cropped). Sequences get one draw for all their frames.
- `normalize`: `none`; `imagenet` (ImageNet's channel means and deviations); `computed` (each channel's
  mean and standard deviation over the training split as the model sees it, resized); or `MEAN,STD`,
  each one number or one per channel separated by `/` (`0.1307,0.3081`; `0.5/0.4/0.4,0.2/0.2/0.2`).

Channels follow the spec's input: one-channel images are repeated to its channels, and RGB images become
greyscale for a one-channel spec (ITU-R 601 luma, as PIL's "L" mode); any other mismatch is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

AUGMENTS = ("none", "flip", "crop", "imagenet")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)


class PreprocessError(ValueError):
    """Settings or images that cannot be prepared for the spec's input: one line says which."""


def parse_normalize(text: str) -> str | tuple[tuple[float, ...], tuple[float, ...]]:
    """`none`, `imagenet`, `computed`, or the (means, deviations) `MEAN,STD` gives."""
    if text in ("none", "imagenet", "computed"):
        return text
    parts = text.split(",")
    try:
        mean, std = (tuple(float(v) for v in part.split("/")) for part in parts) if len(parts) == 2 else ((), ())
    except ValueError:
        mean, std = (), ()
    if not mean or not std:
        raise PreprocessError(f"normalize {text!r} is none, imagenet, computed or MEAN,STD (numbers, or one per "
                              "channel separated by '/': 0.1307,0.3081)")
    if not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
        raise PreprocessError(f"normalize {text!r}: means must be finite and deviations positive")
    if len(mean) != len(std) and 1 not in (len(mean), len(std)):
        raise PreprocessError(f"normalize {text!r} gives {len(mean)} means and {len(std)} deviations")
    return mean, std


def normalize_text(value) -> str | None:
    """A normalisation as a setting's text: `[mean, std]` (numbers or lists) from Python become `MEAN,STD`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return ",".join("/".join(repr(float(v)) for v in (part if isinstance(part, (list, tuple)) else [part]))
                        for part in value)
    raise PreprocessError(f"normalize {value!r} is none, imagenet, computed, MEAN,STD or [mean, std]")


@dataclass(frozen=True)
class Preprocess:
    """Prepares one image (C, h, w) or sequence (T, C, h, w) of floats for a spec's input."""

    channels: int
    size: tuple[int, int]
    augment: str = "none"  # applied when `train`
    mean: tuple[float, ...] | None = None  # per channel (or one for all); None: not normalised
    std: tuple[float, ...] | None = None
    train: bool = False

    def __post_init__(self):
        if self.mean is not None:  # made once: an image is prepared in a few microseconds
            object.__setattr__(self, "_shift", torch.tensor(self.mean).reshape(-1, 1, 1))
            object.__setattr__(self, "_scale", torch.tensor(self.std).reshape(-1, 1, 1))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.geometry(adapt_channels(x, self.channels))
        if self.train and self.augment in ("flip", "crop", "imagenet") and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        if self.mean is not None:
            x = (x - self._shift) / self._scale
        return x.contiguous()

    def geometry(self, x: torch.Tensor) -> torch.Tensor:
        """Resized to the spec's size, cropped as `augment` says (one draw for every frame)."""
        h, w = self.size
        if self.augment == "imagenet":
            from torchvision import transforms

            if self.train:
                top, left, ch, cw = transforms.RandomResizedCrop.get_params(x, (0.08, 1.0), (3 / 4, 4 / 3))
                return transforms.functional.resized_crop(x, top, left, ch, cw, [h, w], antialias=True)
            x = resize(x, (round(h * 256 / 224), round(w * 256 / 224)))
            return transforms.functional.center_crop(x, [h, w])
        x = resize(x, self.size)
        if self.train and self.augment == "crop":
            pad_h, pad_w = max(h // 8, 1), max(w // 8, 1)
            padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
            top, left = (int(torch.randint(2 * p + 1, ())) for p in (pad_h, pad_w))
            x = padded[..., top:top + h, left:left + w]
        return x


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased when it shrinks; unchanged at its size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    shrinks = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrinks)
    return out.reshape(*lead, *out.shape[-3:])


def adapt_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(..., c, h, w) made (..., channels, h, w): repeated from one, or RGB to luma for one."""
    have = x.shape[-3]
    if have == channels:
        return x
    if have == 1:
        return x.expand(*x.shape[:-3], channels, *x.shape[-2:])
    if have == 3 and channels == 1:
        return (x * torch.tensor(LUMA, dtype=x.dtype).reshape(3, 1, 1)).sum(-3, keepdim=True)
    raise PreprocessError(f"images of {have} channels cannot be given to a spec whose input has {channels} (one "
                          "channel is repeated, three become one as greyscale; others must match)")


def moments(blocks, size: tuple[int, int], channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each channel's mean and standard deviation over images as `resize` makes them, without resizing them:
    `blocks` yields float tensors (n, c, h, w). Bilinear resizing is separable, R_h X R_w^T, so with
    u = R_h^T 1 and v = R_w^T 1 an image's resized sum is u^T X v and its sum of squares
    sum(X * (R_h^T R_h) X (R_w^T R_w)). (Shrinking is antialiased, and its operators are found the same way.)"""
    total = squares = None
    count = 0
    operators: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}
    for block in blocks:
        x = adapt_channels(block.double(), channels)
        hw = tuple(x.shape[-2:])
        if hw not in operators:
            shrinks = hw[0] > size[0] or hw[1] > size[1]
            r_h, r_w = _resizing(hw[0], size[0], shrinks), _resizing(hw[1], size[1], shrinks)
            operators[hw] = (r_h.sum(0), r_w.sum(0), r_h.T @ r_h, r_w.T @ r_w)
        u, v, hh, ww = operators[hw]
        block_total = torch.einsum("h,nchw,w->c", u, x, v)
        block_squares = torch.einsum("nchw,nchw->c", x, hh @ x @ ww)
        total = block_total if total is None else total + block_total
        squares = block_squares if squares is None else squares + block_squares
        count += x.shape[0] * size[0] * size[1]
    if total is None or count < 2:
        raise PreprocessError("normalize computed needs at least one training image")
    if not (torch.isfinite(total).all() and torch.isfinite(squares).all()):
        raise PreprocessError("the training images hold NaN or infinite values; mend them (normalize computed "
                              "found their mean and deviation not finite)")
    mean = total / count
    variance = ((squares - count * mean**2) / (count - 1)).clamp_min(0)  # unbiased, as torch.std
    std = variance.sqrt().clamp_min(1e-12)  # a constant channel is left centred, not divided by zero
    return tuple(mean.tolist()), tuple(std.tolist())


def _resizing(n: int, to: int, shrinks: bool) -> torch.Tensor:
    """(to, n): the linear map `resize` applies to a row of n values (antialiased as it is when either side
    of the image shrinks)."""
    if n == to:
        return torch.eye(n, dtype=torch.float64)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, 1, n)
    rows = F.interpolate(basis, size=(1, to), mode="bilinear", align_corners=False, antialias=shrinks)
    return rows.reshape(n, to).T
