"""Datasets for `cortexgraph train`, shaped to what the spec's input asks for.

- `digits`: scikit-learn's 1,797 handwritten 8x8 digits (shipped inside the
  wheel: real and offline), resized to the spec's input size and repeated to
  its channels; a fixed, stratified 80/20 split.
- `digits-moving`: the same digits as sequences, one frame per step, each digit
  sliding from left to right across its frames: for specs whose input is a
  sequence (`input.stimulus: {frames: ...}`).
- `synthetic`: class prototypes plus noise at the spec's shape; for checks.
- `cifar10`: torchvision's CIFAR-10 (downloaded where the network allows),
  standard augmentation (4-pixel padded crops, flips).
- `imagefolder:DIR`: ImageNet's layout, DIR/train/<class>/*.jpg and DIR/val/...,
  random resized crops for training, resize and centre crop for testing.
  A file that cannot be read as an image (corrupt, truncated, not an image,
  or a decompression bomb) is left out of its batch and reported, not raised
  mid-epoch: `collate` gathers the names, and the run counts them per epoch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset, default_collate

from ..spec import Spec

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
KINDS = ("digits", "digits-moving", "synthetic", "cifar10", "imagefolder:DIR")


class DataError(ValueError):
    """Data that cannot be had, or does not fit the spec: one line says what to do."""


@dataclass
class Data:
    name: str
    train: Dataset
    test: Dataset
    classes: int


@dataclass(frozen=True)
class Unreadable:
    """An item that could not be loaded: its file and why (picklable, so it crosses worker processes)."""
    path: str
    reason: str


def collate(items: list[Any]) -> tuple[torch.Tensor | None, torch.Tensor | None, list[Unreadable]]:
    """A batch of the readable items (None if there are none) and the unreadable ones."""
    bad = [item for item in items if isinstance(item, Unreadable)]
    good = [item for item in items if not isinstance(item, Unreadable)]
    x, y = default_collate(good) if good else (None, None)
    return x, y, bad


class CheckedImages(Dataset):
    """An image folder whose unreadable files become `Unreadable` items instead of exceptions."""

    def __init__(self, folder):
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int):
        from PIL import Image

        path = self.folder.samples[index][0]
        try:
            with warnings.catch_warnings():
                # PIL warns between 1x and 2x its pixel limit and raises above: both are refused.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return self.folder[index]
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as exc:  # what PIL raises on damaged or hostile files
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            return Unreadable(path, reason)


def make_data(kind: str, spec: Spec, root: str | Path = "data", seed: int = 0) -> Data:
    channels, size = spec.input.channels, spec.input.size
    stimulus = spec.input.stimulus
    if stimulus is not None and stimulus.show is not None and stimulus.then == "mask":
        raise DataError(f"{spec.name} shows a mask after its image (model(x, mask=m)), and no data set here gives "
                        "masks: train it without the stimulus and load the weights into it "
                        "(examples/backward_masking.py does)")
    sequences = stimulus is not None and stimulus.frames is not None
    if sequences != (kind == "digits-moving"):
        raise DataError(f"{spec.name} takes sequences (input.stimulus has frames): use --data digits-moving"
                        if sequences else f"{kind} gives sequences, one frame per step, but {spec.name} takes one "
                        "image: give its input a stimulus with frames ({frames: hold})")
    if kind == "digits":
        return _digits(channels, size, seed)
    if kind == "digits-moving":
        return _moving(_digits(channels, size, seed), spec.steps + 1)
    if kind == "synthetic":
        return _synthetic(channels, size, spec.readout.head.classes, seed)
    if kind == "cifar10":
        return _cifar10(channels, size, Path(root))
    if kind.startswith("imagefolder:"):
        return _imagefolder(channels, size, Path(kind.removeprefix("imagefolder:")))
    raise DataError(f"unknown data {kind!r}; choose one of {', '.join(KINDS)}")


def _digits(channels: int, size: tuple[int, int], seed: int) -> Data:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=size, mode="bilinear", align_corners=False) if size != (8, 8) else images
    images = ((images - images.mean()) / images.std()).expand(-1, channels, -1, -1).contiguous()
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(range(len(labels)), test_size=0.2, random_state=seed,
                                           stratify=digits.target)
    return Data("digits", TensorDataset(images[train_idx], labels[train_idx]),
                TensorDataset(images[test_idx], labels[test_idx]), 10)


def _moving(digits: Data, frames: int) -> Data:
    """Each digit sliding from left to right, one frame per step: shifted by -s to s pixels (s a fifth of
    the width), the uncovered columns filled with the background (each image's smallest value)."""

    def slide(images: torch.Tensor) -> torch.Tensor:
        width = images.shape[-1]
        span = max(width // 5, 1)
        shifts = torch.linspace(-span, span, frames).round().long().tolist()
        background = images.amin((1, 2, 3), keepdim=True).expand_as(images)
        out = []
        for shift in shifts:
            moved = torch.roll(images, shift, dims=-1)
            if shift > 0:
                moved[..., :shift] = background[..., :shift]
            elif shift < 0:
                moved[..., shift:] = background[..., shift:]
            out.append(moved)
        return torch.stack(out, 1)  # (images, frames, C, H, W)

    train, test = digits.train.tensors, digits.test.tensors
    return Data("digits-moving", TensorDataset(slide(train[0]), train[1]), TensorDataset(slide(test[0]), test[1]),
                digits.classes)


def _synthetic(channels: int, size: tuple[int, int], classes: int, seed: int, train: int = 1024,
               test: int = 256) -> Data:
    g = torch.Generator().manual_seed(seed)
    # Smooth class prototypes (upsampled noise), so that convolutions can tell them apart.
    prototypes = F.interpolate(torch.randn(classes, channels, 4, 4, generator=g), size=size, mode="bilinear",
                               align_corners=False)

    def sample(n: int) -> TensorDataset:
        labels = torch.randint(classes, (n,), generator=g)
        return TensorDataset(prototypes[labels] + 0.5 * torch.randn(n, channels, *size, generator=g), labels)

    return Data("synthetic", sample(train), sample(test), classes)


def _cifar10(channels: int, size: tuple[int, int], root: Path) -> Data:
    from torchvision import datasets, transforms

    if (channels, size) != (3, (32, 32)):
        raise DataError(f"CIFAR-10 images are 3x32x32 but the spec's input is {channels}x{size[0]}x{size[1]}; "
                        "rescale the spec with --size 32, or choose a CIFAR spec")
    normalize = transforms.Normalize(CIFAR_MEAN, CIFAR_STD)
    augment = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                  transforms.ToTensor(), normalize])
    plain = transforms.Compose([transforms.ToTensor(), normalize])
    try:
        train = datasets.CIFAR10(str(root), train=True, transform=augment, download=True)
        test = datasets.CIFAR10(str(root), train=False, transform=plain, download=True)
    except (OSError, RuntimeError) as exc:  # no network, or a corrupted archive
        raise DataError(f"CIFAR-10 is not in {root} and could not be downloaded ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no reason given'}); put "
                        f"cifar-10-python.tar.gz (or its extracted cifar-10-batches-py folder) in {root}, "
                        "or pass --data-dir") from None
    return Data("cifar10", train, test, 10)


def _imagefolder(channels: int, size: tuple[int, int], root: Path) -> Data:
    from torchvision import datasets, transforms

    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise DataError(f"{root / part} is not a folder; imagefolder:DIR wants DIR/train/<class>/<image> "
                            "and DIR/val/<class>/<image> (ImageNet's layout)")
    if channels != 3:
        raise DataError(f"image folders give 3-channel images but the spec's input has {channels} channels")
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    augment = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                  transforms.ToTensor(), normalize])
    resize = tuple(int(s * 256 / 224) for s in size)
    plain = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(size), transforms.ToTensor(),
                                normalize])
    try:
        train = datasets.ImageFolder(str(root / "train"), transform=augment)
        test = datasets.ImageFolder(str(root / "val"), transform=plain)
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"cannot read images under {root}: {exc}") from None
    if train.classes != test.classes:
        raise DataError(f"{root}/train has {len(train.classes)} classes but {root}/val has {len(test.classes)}; "
                        "they must name the same class folders")
    return Data(f"imagefolder:{root}", CheckedImages(train), CheckedImages(test), len(train.classes))
