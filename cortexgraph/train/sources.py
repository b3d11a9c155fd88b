"""Where the items of each data set come from, before they are prepared for a spec: the readers `make_data`
dispatches to, and `Images`, the source of every data set held as arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..plan import Spec
from .data import KINDS, DataError, Sources
from .preprocess import PreprocessError


def read(kind: str, spec: Spec, root: Path, seed: int, download: bool, keys: str | None, test_split: float,
         wants_sequences: bool, root_is_theirs: bool = False) -> Sources:
    """The items of data set `kind` (see `data.KINDS`)."""
    from . import arrays, named

    if kind.startswith("arrays:"):
        got = arrays.read(Path(kind.removeprefix("arrays:")), keys, test_split, seed, wants_sequences)
    elif kind.startswith("imagefolder:"):
        got = named.folders(Path(kind.removeprefix("imagefolder:")), spec.input.channels, "imagefolder")
    elif kind == "imagenet":
        got = named.folders(root, spec.input.channels, "imagenet")
    elif kind in named.TORCHVISION:
        got = named.torchvision_set(kind, root, download, root_is_theirs)
    elif kind in ("digits", "digits-moving"):
        got = digits(seed, kind)
    elif kind == "synthetic":
        got = synthetic(spec.input.channels, spec.input.size, spec.readout.head.classes, seed)
    else:
        raise DataError(f"unknown data {kind!r}; choose one of {', '.join(KINDS)}")
    sequences = got.sequences or kind == "digits-moving"
    if wants_sequences and not sequences:
        raise DataError(f"{spec.name} takes sequences (input.stimulus has frames): use --data digits-moving, or "
                        "arrays:FILE of sequences (N, T, C, H, W)")
    if sequences and not wants_sequences:
        raise DataError(f"{got.name} gives sequences, one frame per step, but {spec.name} takes one image: give "
                        "its input a stimulus with frames ({frames: hold})")
    return got


class Images:
    """Images (N, C, h, w) or sequences (N, T, C, h, w) held as an array (a tensor, a memory map, an HDF5
    data set) and their labels; an item is read and made float when it is asked for (`scale`: 1/255 for
    bytes; `read`: the array's values as a tensor). `indices` picks some of the array's items."""

    def __init__(self, images: Any, labels: torch.Tensor, scale: float = 1.0, read=torch.as_tensor,
                 frames_shape: tuple[int, ...] | None = None, indices: list[int] | None = None):
        self.images, self.labels, self.scale, self.read, self.indices = images, labels, scale, read, indices
        self.frames_shape = frames_shape if frames_shape is not None else tuple(images.shape[1:])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        at = index if self.indices is None else self.indices[index]
        return self.read(self.images[at]).float() * self.scale, self.labels[index]

    def subset(self, indices: list[int]) -> Images:
        return Images(self.images, self.labels[indices], self.scale, self.read, self.frames_shape,
                      indices if self.indices is None else [self.indices[i] for i in indices])

    def blocks(self, held: int = 64 << 20):
        """The images as float blocks (n, c, h, w), a sequence's frames counted as images, each block about
        `held` bytes (at least one item)."""
        item_bytes = 4 * max(1, int(np.prod(self.frames_shape)))
        size = max(1, held // item_bytes)
        for start in range(0, len(self), size):
            at = slice(start, start + size) if self.indices is None else np.asarray(self.indices[start:start + size])
            block = self.read(self.images[at]).float() * self.scale
            yield block.reshape(-1, *block.shape[-3:])


def training_blocks(got: Sources, sampled: int):
    """The training images as float blocks (n, c, h, w): every one where they are arrays, else `sampled` of
    them, spread evenly, one at a time (each read as the model would read it)."""
    if isinstance(got.train, Images):
        yield from got.train.blocks()
        return
    n, read, unreadable = len(got.train), 0, None
    count = min(n, sampled)
    for index in (i * n // count for i in range(count)):
        item = got.train[index]
        if hasattr(item, "reason"):  # an unreadable file counts for nothing
            unreadable = unreadable or item
            continue
        read += 1
        yield item[0].reshape(-1, *item[0].shape[-3:])
    if not read and unreadable is not None:
        raise PreprocessError(f"normalize computed found no readable training image ({unreadable.path}: "
                              f"{unreadable.reason}, and others); give --normalize none or MEAN,STD")


def digits(seed: int, kind: str = "digits") -> Sources:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    found = load_digits()
    images = torch.tensor(found.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(found.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(range(len(labels)), test_size=0.2, random_state=seed,
                                           stratify=found.target)
    return Sources(kind, Images(images[train_idx], labels[train_idx]), Images(images[test_idx], labels[test_idx]),
                   10, kind)


class Synthetic:
    """Class prototypes (smooth: upsampled 4x4 noise) plus noise at the spec's shape, each image made when it
    is asked for, from its own seed: the same seed, split and index give the same image."""

    def __init__(self, prototypes: torch.Tensor, size: tuple[int, int], n: int, seed: int):
        self.prototypes, self.size, self.n, self.seed = prototypes, size, n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch.nn.functional as F

        if not 0 <= index < self.n:
            raise IndexError(index)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = torch.randint(len(self.prototypes), (), generator=g)
        prototype = F.interpolate(self.prototypes[label][None], size=self.size, mode="bilinear",
                                  align_corners=False)[0]
        return prototype + 0.5 * torch.randn(prototype.shape, generator=g), label


def synthetic(channels: int, size: tuple[int, int], classes: int, seed: int, train: int = 1024,
              test: int = 256) -> Sources:
    prototypes = torch.randn(classes, channels, 4, 4, generator=torch.Generator().manual_seed(seed))
    return Sources("synthetic", Synthetic(prototypes, size, train, 2 * seed),
                   Synthetic(prototypes, size, test, 2 * seed + 1), classes, "synthetic")
