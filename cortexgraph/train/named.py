"""The named data sets: torchvision's readers of MNIST, Fashion-MNIST, CIFAR-10/100, SVHN and STL-10 in
their published formats (each file checked against torchvision's checksums before it is read), and image
folders (ImageNet's layout). Nothing is downloaded unless the user asks (`--download`).

A file that cannot be read as an image (corrupt, truncated, not an image, or a decompression bomb) is left
out of its batch and reported, not raised mid-epoch: `collate` gathers the names, and the run counts them
per epoch.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .data import DataError, Sources, Unreadable
from .sources import Images

# name: (torchvision class, what its files are called under the root, how the splits are asked for, classes)
TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw/train-images-idx3-ubyte (and its labels and t10k- files)", "train", 10),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw/train-images-idx3-ubyte (and its labels and t10k- "
                                      "files)", "train", 10),
    "cifar10": ("CIFAR10", "cifar-10-batches-py/ (cifar-10-python.tar.gz extracted)", "train", 10),
    "cifar100": ("CIFAR100", "cifar-100-python/ (cifar-100-python.tar.gz extracted)", "train", 100),
    "svhn": ("SVHN", "train_32x32.mat and test_32x32.mat (needs scipy)", "split", 10),
    "stl10": ("STL10", "stl10_binary/ (stl10_binary.tar.gz extracted)", "split", 10),
}


def torchvision_set(kind: str, root: Path, download: bool, root_is_theirs: bool = False) -> Sources:
    from torchvision import datasets

    cls_name, layout, how, classes = TORCHVISION[kind]
    cls = getattr(datasets, cls_name)
    splits = []
    for train in (True, False):
        split = {"train": train} if how == "train" else {"split": "train" if train else "test"}
        try:
            splits.append(cls(str(root), download=download, **split))
        except ImportError as exc:  # SVHN's .mat files need scipy
            raise DataError(f"{kind} needs {exc.name or 'a package that is missing'}: pip install "
                            f"{exc.name or 'scipy'}") from None
        except (OSError, RuntimeError, ValueError, KeyError, EOFError) as exc:  # absent, corrupt, or no network
            if root_is_theirs:
                raise DataError(f"{kind} is not in {root} (the checkpoint's data_dir, read but never written to); "
                                "pass --data-dir to name where it is (with --download to fetch it there)") from None
            if not download:
                raise DataError(f"{kind} is not in {root} (torchvision's layout: {root}/{layout}); pass --download "
                                "to fetch it there, or --data-dir to name where it is") from None
            reason = str(exc).splitlines()[0] if str(exc) else "no reason given"
            raise DataError(f"{kind} is not in {root} and could not be downloaded ({type(exc).__name__}: "
                            f"{reason}); put {layout} in {root}, or pass --data-dir") from None
    train, test = (_as_images(kind, part) for part in splits)
    return Sources(kind, train, test, classes, kind)


def _as_images(kind: str, dataset) -> Images:
    """The arrays torchvision's reader holds, as images (N, C, h, w) of bytes."""
    data = dataset.data
    labels = torch.as_tensor(np.asarray(dataset.targets if hasattr(dataset, "targets") else dataset.labels),
                             dtype=torch.long)
    images = torch.as_tensor(np.asarray(data))
    if images.ndim == 3:  # MNIST's (N, 28, 28)
        images = images[:, None]
    elif kind.startswith("cifar"):  # (N, 32, 32, 3)
        images = images.permute(0, 3, 1, 2)
    return Images(images, labels, scale=1 / 255)


def folders(root: Path, channels: int, kind: str) -> Sources:
    """Images in ImageNet's layout: root/train/<class>/<image> and root/val/<class>/<image>."""
    from torchvision import datasets

    if kind == "imagefolder":
        wants = "imagefolder:DIR wants DIR/train/<class>/<image> and DIR/val/<class>/<image> (ImageNet's layout)"
    else:
        wants = (f"imagenet wants {root}/train/<class>/<image> and {root}/val/<class>/<image> (ImageNet's "
                 "layout; --data-dir names the folder)")
    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise DataError(f"{root / part} is not a folder; {wants}")
    if channels not in (1, 3):
        raise DataError(f"image files give 1 (greyscale) or 3 (RGB) channels but the spec's input has {channels}")
    mode = "L" if channels == 1 else "RGB"
    try:
        train = datasets.ImageFolder(str(root / "train"), loader=partial(_open, mode=mode))
        test = datasets.ImageFolder(str(root / "val"), loader=partial(_open, mode=mode))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"cannot read images under {root}: {exc}") from None
    if train.classes != test.classes:
        raise DataError(f"{root}/train has {len(train.classes)} classes but {root}/val has {len(test.classes)}; "
                        "they must name the same class folders")
    return Sources(f"imagefolder:{root}" if kind == "imagefolder" else "imagenet", CheckedImages(train),
                   CheckedImages(test), len(train.classes), kind)


def _open(path: str, mode: str) -> torch.Tensor:
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    with open(path, "rb") as f, Image.open(f) as image:
        return pil_to_tensor(image.convert(mode)).float() / 255


class CheckedImages:
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
                x, y = self.folder[index]
                return x, torch.tensor(y)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as exc:  # what PIL raises on damaged or hostile files
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            return Unreadable(path, reason)
