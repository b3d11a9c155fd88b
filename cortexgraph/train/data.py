"""Data sets for `cortexgraph train`, `evaluate` and `features`, shaped to what the spec's input asks for.

- `digits`: scikit-learn's 1,797 handwritten 8x8 digits (shipped inside its wheel: real and offline); a
  fixed, stratified 80/20 split. `digits-moving`: the same digits as sequences, one frame per step, each
  digit sliding from left to right across its frames (for specs whose input is a sequence).
- `synthetic`: class prototypes plus noise at the spec's shape; for checks.
- `mnist`, `fashion-mnist`, `cifar10`, `cifar100`, `svhn`, `stl10`: torchvision's data sets in its
  layout under `--data-dir`, downloaded there only with `--download`. `imagenet`: an ImageNet folder at
  `--data-dir` (DIR/train/<class>/<image>, DIR/val/<class>/<image>).
- `imagefolder:DIR`: any images in that layout (greyscale, RGB, any size).
- `arrays:FILE`: images (N, C, H, W) or sequences (N, T, C, H, W) and labels in an .npz, .h5 or .mat file
  or a folder of .npy files, memory-mapped (`cortexgraph.train.arrays`).

Every image is shaped when the data loader asks for it (a batch is the most held at once; `check_batch`
refuses one bigger than the machine before the first is made): its channels and size made the spec's,
augmented for training and normalised as `augment` and `normalize` say (`cortexgraph.train.preprocess`),
each defaulting to what suits its data set (`DEFAULTS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, default_collate

from ..plan import Spec
from .preprocess import AUGMENTS, IMAGENET_MEAN, IMAGENET_STD, Preprocess, PreprocessError, moments, parse_normalize

KINDS = ("digits", "digits-moving", "synthetic", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "stl10",
         "imagenet", "imagefolder:DIR", "arrays:FILE")
# What each data set gets unless told otherwise: (augment, normalize).
DEFAULTS = {"digits": ("none", "computed"), "digits-moving": ("none", "computed"), "synthetic": ("none", "none"),
            "mnist": ("none", "computed"), "fashion-mnist": ("none", "computed"), "cifar10": ("crop", "computed"),
            "cifar100": ("crop", "computed"), "svhn": ("none", "computed"), "stl10": ("crop", "computed"),
            "imagenet": ("imagenet", "imagenet"), "imagefolder": ("none", "computed"),
            "arrays": ("none", "computed")}
# What runs made before `augment` and `normalize` were settings did, for their checkpoints' sake.
BEFORE_SETTINGS = {"imagefolder": ("imagenet", "imagenet"),
                   "cifar10": ("crop", "0.4914/0.4822/0.4465,0.247/0.2435/0.2616")}
SAMPLED = 1000  # images a computed normalisation reads from a data set that is not held as arrays


class DataError(ValueError):
    """Data that cannot be had, or does not fit the spec: one line says what to do."""


@dataclass
class Data:
    name: str
    train: Dataset
    test: Dataset
    classes: int
    augment: str = "none"
    normalize: str = "none"  # as the run's first line says it, with the values a computed one found
    setting: str = "none"  # the normalisation as a setting (a computed one as its numbers), for checkpoints
    sequences: bool = False
    plain_train: Dataset | None = None  # the training images as the test images are prepared (not augmented)

    def describe(self) -> str:
        """What the run's first line says of its data."""
        return (f"{self.name}: {len(self.train):,} training and {len(self.test):,} test "  # type: ignore[arg-type]
                f"{'sequences' if self.sequences else 'images'}, augment {self.augment}, "
                f"normalize {self.normalize}")


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


class Prepared(Dataset):
    """A source's items (float images (C, h, w) or sequences (T, C, h, w), and labels), each prepared for the
    spec's input when it is asked for; with `frames`, an image becomes a sequence of it sliding across."""

    def __init__(self, source, prepare: Preprocess, frames: int | None = None):
        self.source, self.prepare, self.frames = source, prepare, frames

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        item = self.source[index]
        if isinstance(item, Unreadable):
            return item
        x, y = item
        x = self.prepare(x)
        return (slide(x[None], self.frames)[0] if self.frames else x), y


class Strict(Dataset):
    """A split whose unreadable files stop the command in one line, for `evaluate` and `features` (features
    keep one row per image, so none may be left out quietly)."""

    def __init__(self, split: Dataset):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        item = self.split[index]
        if isinstance(item, Unreadable):
            raise DataError(f"{item.path} cannot be read as an image ({item.reason}); mend it, or move it out "
                            "of the folder")
        return item


@dataclass
class Sources:
    """What a data set's reader gives: its training and test items (unprepared), its number of classes, and
    the kind of data set it is (a key of `DEFAULTS`)."""
    name: str
    train: Any
    test: Any
    classes: int
    kind: str
    sequences: bool = False


def saved_data_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's settings, with the augmentation and normalisation a run made before they were settings
    used (ImageNet's recipe for image folders, fixed constants for CIFAR-10), so that it is evaluated and
    resumed on images prepared as it trained on them."""
    if "augment" in settings or "data" not in settings or not isinstance(settings["data"], str):
        return settings
    kind = settings["data"].split(":")[0]
    augment, normalize = BEFORE_SETTINGS.get(kind, DEFAULTS.get(kind, (None, None)))
    return {**settings, "augment": augment, "normalize": normalize}


def make_data(kind: str, spec: Spec, root: str | Path = "data", seed: int = 0, download: bool = False,
              augment: str | None = None, normalize: str | None = None, keys: str | None = None,
              test_split: float = 0.2, root_is_theirs: bool = False) -> Data:
    """The data set `kind` shaped to `spec`'s input. Nothing is downloaded unless `download`; `root` is only
    read otherwise (`root_is_theirs`: a folder that a checkpoint's settings name, which the user did not)."""
    from . import sources

    stimulus = spec.input.stimulus
    if stimulus is not None and stimulus.show is not None and stimulus.then == "mask":
        raise DataError(f"{spec.name} shows a mask after its image (model(x, mask=m)), and no data set here gives "
                        "masks: train it without the stimulus and load the weights into it "
                        "(examples/backward_masking.py does)")
    wants_sequences = stimulus is not None and stimulus.frames is not None
    try:
        got = sources.read(kind, spec, Path(root), seed, download, keys, test_split, wants_sequences, root_is_theirs)
        default_augment, default_normalize = DEFAULTS[got.kind]
        augment = augment or default_augment
        if augment not in AUGMENTS:
            raise DataError(f"augment {augment!r} is one of {', '.join(AUGMENTS)}")
        normalize = normalize or default_normalize
        mean, std, said = _normalization(parse_normalize(normalize), got, spec)
        channels, size = spec.input.channels, spec.input.size
        frames = spec.steps + 1 if kind == "digits-moving" else None
        train = Prepared(got.train, Preprocess(channels, size, augment, mean, std, train=True), frames)
        test = Prepared(got.test, Preprocess(channels, size, augment, mean, std), frames)
        plain = Prepared(got.train, Preprocess(channels, size, augment, mean, std), frames)
        if len(plain):
            plain[0]  # a first image through the preparation (no random draw): a mismatch is found now
    except PreprocessError as exc:
        raise DataError(f"{got.name if 'got' in locals() else kind}: {exc}") from None
    if normalize == "computed":  # kept as the numbers found: evaluating new stimuli must not recompute them
        normalize = ",".join("/".join(repr(v) for v in (values[:1] if len(set(values)) == 1 else values))
                             for values in (mean, std))
    return Data(got.name, train, test, got.classes, augment, said, normalize, wants_sequences, plain)


def _normalization(setting, got: Sources, spec: Spec):
    """The means and deviations a normalisation setting gives (None, None for none), and how to say it."""
    if setting == "none":
        return None, None, "none"
    if setting == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if spec.input.channels == 1:  # as the luma of an RGB image: its mean, and a deviation of the same scale
            mean, std = (sum(m * w for m, w in zip(mean, (0.299, 0.587, 0.114))),), (sum(std) / 3,)
        return _fit(mean, std, spec), _fit(std, std, spec), "imagenet"
    if setting == "computed":
        from .sources import training_blocks

        mean, std = moments(training_blocks(got, SAMPLED), spec.input.size, spec.input.channels)
        return mean, std, f"computed (mean {_numbers(mean)}, std {_numbers(std)})"
    mean, std = setting
    return _fit(mean, std, spec), _fit(std, mean, spec), f"{_numbers(mean)},{_numbers(std)}"


def _fit(values: tuple[float, ...], other: tuple[float, ...], spec: Spec) -> tuple[float, ...]:
    channels = spec.input.channels
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise PreprocessError(f"normalize gives {len(values)} values per channel but the spec's input has "
                              f"{channels} channels")
    return values


def _numbers(values: tuple[float, ...]) -> str:
    same = all(abs(v - values[0]) < 1e-12 for v in values)
    return f"{values[0]:.4g}" if same else "/".join(f"{v:.4g}" for v in values)


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


def slide(images: torch.Tensor, frames: int) -> torch.Tensor:
    """(N, C, H, W) images -> (N, frames, C, H, W) sequences of them sliding from left to right: shifted by
    -s to s pixels (s a fifth of the width), the uncovered columns filled with the background (the image's
    smallest value)."""
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
