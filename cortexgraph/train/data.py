"""Datasets for `cortexgraph train`, shaped to what the spec's input asks for.

- `digits`: scikit-learn's 1,797 handwritten 8x8 digits (shipped inside the
  wheel: real and offline), resized to the spec's input size and repeated to
  its channels; a fixed, stratified 80/20 split.

Every data set here shapes an image when it is asked for (the data loader's
batch is the most held at once), and `check_batch` refuses a batch bigger
than the machine before the first one is made.

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
from torch.utils.data import Dataset, default_collate

from ..plan import Spec

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


def make_data(kind: str, spec: Spec, root: str | Path = "data", seed: int = 0, download: bool = True) -> Data:
    """The data set `kind` shaped to `spec`'s input. `download=False` reads `root` and never writes there (a
    folder that a checkpoint's settings name, which the user did not)."""
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
        return _digits(channels, size, seed, frames=spec.steps + 1)
    if kind == "synthetic":
        return _synthetic(channels, size, spec.readout.head.classes, seed)
    if kind == "cifar10":
        return _cifar10(channels, size, Path(root), download)
    if kind.startswith("imagefolder:"):
        return _imagefolder(channels, size, Path(kind.removeprefix("imagefolder:")))
    raise DataError(f"unknown data {kind!r}; choose one of {', '.join(KINDS)}")


def check_batch(spec: Spec, batch_size: int) -> None:
    """Refuse, before the first batch, a batch of the spec's input bigger than this machine's memory (the
    data sets here shape each image when it is asked for: a batch is the most held at once)."""
    from ..sizes import machine_memory
    from ..units import format_bytes

    stimulus = spec.input.stimulus
    frames = spec.steps + 1 if stimulus is not None and stimulus.frames is not None else 1
    c, (h, w) = spec.input.channels, spec.input.size
    need = batch_size * frames * c * h * w * 4  # float32
    memory = machine_memory()
    if memory is not None and need > memory:
        what = f"{frames:,} frames of {c}x{h}x{w}" if frames > 1 else f"{c}x{h}x{w} images"
        raise DataError(f"a batch of {batch_size:,} inputs of {what} takes {format_bytes(need)}, more than this "
                        f"machine's {format_bytes(memory)} of memory; lower --batch-size, or the spec's size or steps")


def _digits(channels: int, size: tuple[int, int], seed: int, frames: int | None = None) -> Data:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    mean, std = _resized_moments(images, size)
    images = (images - mean) / std  # as the resized images would be: resizing is linear, so it commutes
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(range(len(labels)), test_size=0.2, random_state=seed,
                                           stratify=digits.target)
    return Data("digits-moving" if frames else "digits",
                Shaped(images[train_idx], labels[train_idx], channels, size, frames),
                Shaped(images[test_idx], labels[test_idx], channels, size, frames), 10)


def _resized_moments(images: torch.Tensor, size: tuple[int, int]) -> tuple[float, float]:
    """The mean and standard deviation of `images` (N, 1, h, w) resized to `size` (bilinear), without resizing
    them. Bilinear resizing is separable, R_h X R_w^T, so with u = R_h^T 1 and v = R_w^T 1 the sum of a
    resized image is u^T X v, and the sum of its squares sum(X * (R_h^T R_h) X (R_w^T R_w))."""
    def resizing(n: int, to: int) -> torch.Tensor:  # (to, n): a row of n values resized to `to`
        basis = torch.eye(n, dtype=torch.float64).reshape(n, 1, 1, n)
        return F.interpolate(basis, size=(1, to), mode="bilinear", align_corners=False).reshape(n, to).T

    x = images[:, 0].double()
    r_h, r_w = resizing(x.shape[1], size[0]), resizing(x.shape[2], size[1])
    u, v = r_h.sum(0), r_w.sum(0)
    count = x.shape[0] * size[0] * size[1]
    total = torch.einsum("h,nhw,w->", u, x, v)
    squares = torch.einsum("nhw,nhw->", x, (r_h.T @ r_h) @ x @ (r_w.T @ r_w))
    mean = total / count
    variance = (squares - count * mean**2) / (count - 1)  # unbiased, as torch.std
    return float(mean), float(variance.sqrt())


class Shaped(Dataset):
    """Small source images (N, 1, h, w) and their labels, each shaped to the spec's input only when it is
    asked for (a 1x1024 spec on digits would otherwise hold 7.5 GB): resized (bilinear), repeated to
    `channels`, and, with `frames`, a sequence of the image sliding from left to right, one frame a step:
    shifted by -s to s pixels (s a fifth of the width), the uncovered columns filled with the background
    (the image's smallest value)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, channels: int, size: tuple[int, int],
                 frames: int | None = None):
        self.images, self.labels, self.channels, self.size, self.frames = images, labels, channels, size, frames

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index:index + 1]
        if tuple(image.shape[-2:]) != tuple(self.size):
            image = F.interpolate(image, size=self.size, mode="bilinear", align_corners=False)
        image = image.expand(-1, self.channels, -1, -1)
        shaped = _slide(image, self.frames) if self.frames else image
        return shaped[0].contiguous(), self.labels[index]


def _slide(images: torch.Tensor, frames: int) -> torch.Tensor:
    """(N, C, H, W) images -> (N, frames, C, H, W) sequences of them sliding from left to right."""
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
    return torch.stack(out, 1)


def stacked(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (image, label) of a small data set at once, as two tensors (for analyses and tests)."""
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))  # type: ignore[arg-type]
    return torch.stack(images), torch.stack([torch.as_tensor(y) for y in labels])


class Synthetic(Dataset):
    """Class prototypes (smooth: upsampled 4x4 noise) plus noise at the spec's shape, each image made when it
    is asked for, from its own seed: the same seed, split and index give the same image."""

    def __init__(self, prototypes: torch.Tensor, size: tuple[int, int], n: int, seed: int):
        self.prototypes, self.size, self.n, self.seed = prototypes, size, n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.n:
            raise IndexError(index)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = torch.randint(len(self.prototypes), (), generator=g)
        prototype = F.interpolate(self.prototypes[label][None], size=self.size, mode="bilinear",
                                  align_corners=False)[0]
        return prototype + 0.5 * torch.randn(prototype.shape, generator=g), label


def _synthetic(channels: int, size: tuple[int, int], classes: int, seed: int, train: int = 1024,
               test: int = 256) -> Data:
    prototypes = torch.randn(classes, channels, 4, 4, generator=torch.Generator().manual_seed(seed))
    return Data("synthetic", Synthetic(prototypes, size, train, 2 * seed), Synthetic(prototypes, size, test,
                                                                                    2 * seed + 1), classes)


def _cifar10(channels: int, size: tuple[int, int], root: Path, download: bool) -> Data:
    from torchvision import datasets, transforms

    if (channels, size) != (3, (32, 32)):
        raise DataError(f"CIFAR-10 images are 3x32x32 but the spec's input is {channels}x{size[0]}x{size[1]}; "
                        "rescale the spec with --size 32, or choose a CIFAR spec")
    normalize = transforms.Normalize(CIFAR_MEAN, CIFAR_STD)
    augment = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                  transforms.ToTensor(), normalize])
    plain = transforms.Compose([transforms.ToTensor(), normalize])
    try:
        train = datasets.CIFAR10(str(root), train=True, transform=augment, download=download)
        test = datasets.CIFAR10(str(root), train=False, transform=plain, download=download)
    except (OSError, RuntimeError) as exc:  # no network, or a corrupted archive
        if not download:
            raise DataError(f"CIFAR-10 is not in {root} (the checkpoint's data_dir, read but never written to); "
                            "pass --data-dir to name where it is, or where to download it") from None
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
