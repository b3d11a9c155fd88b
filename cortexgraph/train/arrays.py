"""`--data arrays:FILE`: a stimulus set held as arrays, read an item at a time without loading the file.

FILE is an .npz (stored members memory-mapped; compressed ones are read whole), an .h5/.hdf5 file (read
by h5py as asked), a .mat file (MATLAB 7.3 through h5py; older ones through scipy, whole), or a folder of
.npy files (memory-mapped). It holds images (N, C, H, W) or (N, H, W), or, for specs whose input is a
sequence, sequences (N, T, C, H, W) or (N, T, H, W); and integer labels (N,). Bytes are scaled to [0, 1];
other numbers are taken as they are.

Keys: the images are the first of `x`, `images`, `X`, `data`, `stimuli`, `inputs` the file has and the
labels the first of `y`, `labels`, `Y`, `targets`, `target` (or `--data-keys IMAGES,LABELS`). The test
split is `<images>_test` and `<labels>_test` beside `<images>_train` and `<labels>_train` where the file
has them; otherwise a stratified `--test-split` fraction (default 0.2) of the images, drawn by the seed.
"""

from __future__ import annotations

import os
import struct
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .data import DataError, Sources
from .sources import Images

IMAGE_KEYS = ("x", "images", "X", "data", "stimuli", "inputs")
LABEL_KEYS = ("y", "labels", "Y", "targets", "target")


def read(path: Path, keys: str | None, test_split: float, seed: int, wants_sequences: bool) -> Sources:
    store = _open(path)
    image_bases, label_bases = _bases(keys)
    images_key, split = _find(store, image_bases, path, "images", keys)
    labels_key, label_split = _find(store, label_bases, path, "labels", keys)
    if split != label_split:
        raise DataError(f"{path}: {images_key} and {labels_key} must both be split into _train and _test "
                        "arrays, or neither")
    expected = "(N, T, C, H, W) or (N, T, H, W)" if wants_sequences else "(N, C, H, W) or (N, H, W)"
    name = f"arrays:{path}"
    if split:
        train = _images(store, images_key + "_train", labels_key + "_train", path, expected, wants_sequences)
        test = _images(store, images_key + "_test", labels_key + "_test", path, expected, wants_sequences)
    else:
        whole = _images(store, images_key, labels_key, path, expected, wants_sequences)
        if not 0 < test_split < 1:
            raise DataError(f"--test-split {test_split} is a fraction in (0, 1) of {path}'s images to test on")
        train_idx, test_idx = _stratified(whole.labels, test_split, seed)
        if not len(train_idx) or not len(test_idx):
            raise DataError(f"{path}: {len(whole):,} images leave none to {'test' if len(train_idx) else 'train'} "
                            f"on at --test-split {test_split}")
        train, test = whole.subset(train_idx), whole.subset(test_idx)
    classes = int(max(train.labels.max(), test.labels.max())) + 1
    for part, got in (("train", train), ("test", test)):
        if got.frames_shape[-3:-2] != train.frames_shape[-3:-2]:
            raise DataError(f"{path}: the {part} images have {got.frames_shape[-3]} channels but the training "
                            f"images {train.frames_shape[-3]}")
    return Sources(name, train, test, classes, "arrays", sequences=wants_sequences)


def _bases(keys: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if keys is None:
        return IMAGE_KEYS, LABEL_KEYS
    parts = [part.strip() for part in keys.split(",")]
    if len(parts) != 2 or not all(parts):
        raise DataError(f"--data-keys {keys!r} names the images and the labels: IMAGES,LABELS")
    return (parts[0],), (parts[1],)


def _find(store: dict, bases: tuple[str, ...], path: Path, what: str, keys: str | None) -> tuple[str, bool]:
    for base in bases:
        if base in store:
            return base, False
        if base + "_train" in store and base + "_test" in store:
            return base, True
    held = ", ".join(sorted(store)) or "nothing"
    hint = "" if keys else "; name them with --data-keys IMAGES,LABELS"
    raise DataError(f"{path} has no {what} under {' or '.join(bases)} (nor {bases[0]}_train and {bases[0]}_test); "
                    f"it holds {held}{hint}")


def _images(store: dict, images_key: str, labels_key: str, path: Path, expected: str, sequences: bool) -> Images:
    images, labels = _load(store, images_key, path), _load(store, labels_key, path)
    shape = tuple(images.shape)
    full = 5 if sequences else 4
    if len(shape) not in (full - 1, full) or 0 in shape:
        raise DataError(f"{path}: {images_key} has shape {shape}; expected {expected}"
                        + ("; a spec whose input is a sequence takes sequences" if not sequences and len(shape) == 5
                           else ""))
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_):
        raise DataError(f"{path}: {images_key} holds {images.dtype}, not numbers")
    channels = shape[-3] if len(shape) == full else 1
    if channels > 4 and shape[-1] in (1, 3, 4):
        raise DataError(f"{path}: {images_key} has shape {shape}, channels last; expected {expected} "
                        "(numpy.moveaxis(x, -1, -3) puts the channels first)")
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.number):
        raise DataError(f"{path}: {labels_key} must hold class numbers 0, 1, 2, ... (it holds {labels.dtype})")
    labels = labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
    if labels.shape != (shape[0],):
        raise DataError(f"{path}: {labels_key} has shape {tuple(labels.shape)}; expected ({shape[0]},), a label "
                        f"for each of {images_key}'s {shape[0]:,} images")
    if not np.all(np.mod(labels, 1) == 0) or labels.min() < 0:
        raise DataError(f"{path}: {labels_key} must hold class numbers 0, 1, 2, ... (it holds {labels.dtype} "
                        f"from {labels.min()} to {labels.max()})")
    scale = 1 / 255 if images.dtype == np.uint8 else 1.0
    reader = partial(_tensor, add_channel=len(shape) == full - 1)
    frames = shape[1:] if len(shape) == full else shape[1:-2] + (1,) + shape[-2:]
    return Images(images, torch.as_tensor(labels.astype(np.int64)), scale, reader, frames_shape=frames)


def _load(store: dict, key: str, path: Path):
    try:
        return store[key]()
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None


def _tensor(array, add_channel: bool) -> torch.Tensor:
    values = np.asarray(array)
    # A copy (a memory map is read-only), in this machine's byte order (MATLAB's may not be), as floats.
    values = np.array(values, dtype=values.dtype.newbyteorder("=") if values.dtype.kind == "f" else np.float32)
    tensor = torch.from_numpy(values)
    return tensor.unsqueeze(-3) if add_channel else tensor


def _stratified(labels: torch.Tensor, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Each class's images split at `fraction`, the choice drawn by `seed`."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=g)].tolist()
        cut = round(fraction * len(members))
        test += members[:cut]
        train += members[cut:]
    return sorted(train), sorted(test)


# --- the stores: name -> a function giving the array (memory-mapped or read as asked) -------------------


def _open(path: Path) -> dict:
    if path.is_dir():
        return {p.stem: partial(np.load, p, mmap_mode="r", allow_pickle=False) for p in sorted(path.glob("*.npy"))}
    if not path.is_file():
        raise DataError(f"{path}: no such file (arrays:FILE reads an .npz, .h5, .hdf5 or .mat file, or a folder of "
                        ".npy files)")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        raise DataError(f"{path} holds one array; put the images and labels in an .npz (numpy.savez(FILE, x=images, "
                        "y=labels)) or as x.npy and y.npy in a folder, and give arrays:THAT")
    try:
        if suffix == ".npz":
            return _npz(path)
        if suffix in (".h5", ".hdf5") or (suffix == ".mat" and _is_hdf5(path)):
            return _hdf5(path, transposed=suffix == ".mat")
        if suffix == ".mat":
            return _mat(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") \
            from None
    raise DataError(f"{path}: arrays:FILE reads .npz, .h5, .hdf5 and .mat files, or a folder of .npy files")


def _npz(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        members = [info for info in archive.infolist() if info.filename.endswith(".npy")]
    return {info.filename[:-4]: partial(_npz_member, path, info) for info in members}


def _npz_member(path: Path, info: zipfile.ZipInfo):
    """A stored member memory-mapped where it lies in the archive; a compressed one read whole."""
    if info.compress_type != zipfile.ZIP_STORED:
        with zipfile.ZipFile(path) as archive, archive.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(f)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = header(f)
        if dtype.hasobject:
            raise ValueError(f"{info.filename} holds Python objects, which are not read")
        offset = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        return b"MATLAB 7.3" in f.read(128)


def _hdf5(path: Path, transposed: bool) -> dict:
    try:
        import h5py
    except ImportError:
        raise DataError(f"{path} is an HDF5 file: reading it needs h5py (pip install h5py)") from None
    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, node: names.append(name) if isinstance(node, h5py.Dataset) else None)
    return {name: partial(_H5Array, path, name, transposed) for name in names}


def _mat(path: Path) -> dict:
    try:
        from scipy.io import whosmat
    except ImportError:
        raise DataError(f"{path} is a MATLAB file: reading it needs scipy (pip install scipy)") from None
    names = [name for name, _, _ in whosmat(str(path))]
    return {name: partial(_mat_variable, path, name) for name in names}


def _mat_variable(path: Path, name: str):
    from scipy.io import loadmat

    return loadmat(str(path), variable_names=[name])[name]


class _H5Array:
    """An HDF5 data set read as asked, opened anew in each process (a handle does not survive a fork);
    `transposed`: MATLAB 7.3 files store arrays with their axes reversed."""

    def __init__(self, path: Path, name: str, transposed: bool):
        import h5py

        self.path, self.name, self.transposed = path, name, transposed
        self._file, self._pid = None, None
        with h5py.File(path, "r") as f:
            data = f[name]
            self.shape = tuple(reversed(data.shape)) if transposed else tuple(data.shape)
            self.dtype = data.dtype

    def _data(self):
        import h5py

        if self._pid != os.getpid():
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file[self.name]

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        values = self._data()[()]
        values = values.T if self.transposed else values
        return values if dtype is None else values.astype(dtype)

    def __getitem__(self, index):
        if isinstance(index, (np.ndarray, list)):
            index = sorted(int(i) for i in index)  # h5py reads increasing indices
        data = self._data()
        if not self.transposed:
            return data[index]
        values = data[(..., index)]
        return np.moveaxis(values, -1, 0).transpose(0, *range(values.ndim - 1, 0, -1)) if not isinstance(
            index, int) else values.T

    def __getstate__(self):
        return {**self.__dict__, "_file": None, "_pid": None}
