"""Feature files a user can trust: written whole or not at all, by one writer at a time, never over
what the user did not ask to replace, and read back only when complete.

An output is a folder of `.npy` files with `features.json`, or one HDF5 file (`h5py`). Either is
written where no reader looks (a `.cortexgraph-partial` folder inside the output folder, or a
temporary file beside the `.h5`) and put in place only when every image is in; the manifest
(`features.json`, or the file's `features` attribute) goes last and says `"complete": true`, which
`read_features` checks. The writer holds the output's lock (`lock.py`) from start to end, so a second
writer is refused with the first one's name; arrays are written in order, a chunk at a time (never
memory-mapped: a full disk is then an error, not a SIGBUS), after the free space was checked against
the estimate (`feature_bytes`).

Replacing a folder (`--overwrite`) is a few renames once the new output is complete: the old manifest
goes first, the new one last, with Ctrl-C held off meanwhile, so that a kill in that moment leaves a
folder without a manifest, which readers refuse, never a mix that looks complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic import (
    GuardedFile,
    OutputError,
    check_space,
    check_target,
    make_folders,
    publish,
    remove_empty,
    uninterrupted,
)
from .lock import FOLDER_LOCK, FOLDER_OWNER, InUse, Lock

MANIFEST = "features.json"
PARTIAL = ".cortexgraph-partial"
HDF5_SUFFIXES = (".h5", ".hdf5")
FLOAT_BYTES, LABEL_BYTES = 4, 8  # features are written as float32, labels as int64
ARRAY_NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*\.t\d+|labels)$")  # the names a writer gives its arrays


class FeaturesError(ValueError):
    """Features that cannot be written or read: one line says why."""


def is_hdf5(path: str | Path) -> bool:
    return Path(path).suffix in HDF5_SUFFIXES


def feature_bytes(shapes: Mapping[str, tuple[int, ...]], images: int) -> int:
    """The bytes an output of `images` images takes: each name's values per image as float32, the labels."""
    return sum(_array_bytes(shapes, images).values()) + (1 << 16)  # and the manifest, the headers


def _array_bytes(shapes: Mapping[str, tuple[int, ...]], images: int) -> dict[str, int]:
    return {**{name: images * FLOAT_BYTES * _count(shape) for name, shape in shapes.items()},
            "labels": images * LABEL_BYTES}


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def read_features(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest, arrays by name) of a complete output; the arrays of a folder are memory-mapped, those of
    an HDF5 file read whole. An output whose writer did not finish is refused: it is not there."""
    import numpy as np

    path = Path(path)
    if is_hdf5(path):
        import h5py

        if not path.is_file():
            raise FeaturesError(f"{path}: no such file")
        with h5py.File(path, "r") as f:
            meta = _complete(path, f.attrs.get("features"))
            return meta, {name: f[name][:] for name in _arrays(meta)}
    manifest = path / MANIFEST
    if not manifest.is_file():
        busy = " (a writer is at work there, or was stopped)" if (path / PARTIAL).exists() else ""
        raise FeaturesError(f"{path} holds no complete features: it has no {MANIFEST}{busy}")
    meta = _complete(path, manifest.read_text())
    return meta, {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in _arrays(meta)}


def _complete(path: Path, text: Any) -> dict[str, Any]:
    meta = _manifest(text)
    if meta is None or meta.get("complete") is not True:
        raise FeaturesError(f"{path} holds no complete features: its writer did not finish (no complete mark)")
    return meta


def _manifest(text: Any) -> dict[str, Any] | None:
    """A manifest's contents, or None where it is not one (its names checked: a name is a file to read and,
    under --overwrite, to remove, so never a path such as `../x`)."""
    try:
        meta = json.loads(text) if text is not None else None
    except ValueError:
        return None
    names = meta.get("names") if isinstance(meta, dict) else None
    if not (isinstance(names, list) and all(isinstance(n, str) and ARRAY_NAME.match(n) for n in names)):
        return None
    return meta


def _arrays(meta: dict[str, Any]) -> list[str]:
    return [*meta["names"], "labels"]


class FeatureSink(ABC):
    """Where one output's arrays go while they are written; `commit` puts them in place, `abort` removes
    everything this writer made. Made by `open_sink`."""

    def __init__(self, out: Path, shapes: dict[str, tuple[int, ...]], images: int, overwrite: bool):
        self.out, self.shapes, self.images, self.overwrite = out, shapes, images, overwrite
        self.names = [*shapes, "labels"]
        self.lock = self._lock()
        self.made: list[Path] = []  # the folders this writer made, innermost first
        self.rows: dict[str, int] = {}  # rows written of each array

    @abstractmethod
    def _lock(self) -> Lock:
        """The output's lock."""

    @abstractmethod
    def check(self) -> None:
        """Refuse, before anything is written: an output there without --overwrite, a link or a device at a
        name to be written."""

    @property
    @abstractmethod
    def folder(self) -> Path:
        """The folder the arrays are written in (its disk's free space is checked)."""

    @abstractmethod
    def begin(self) -> None:
        """Make the place the arrays are written to (removing a killed writer's)."""

    @abstractmethod
    def _write(self, name: str, chunk: Any) -> None:
        """The next rows of `name`."""

    @abstractmethod
    def _commit(self, meta: dict[str, Any]) -> None:
        """Put the complete output in place, its manifest last."""

    @abstractmethod
    def abort(self) -> None:
        """Remove what this writer made; the output is as it was."""

    def hold(self) -> None:
        self.made = make_folders(self.folder)
        self.lock.hold("writer", "or choose another --out")

    def write(self, name: str, chunk: Any) -> None:
        self._write(name, chunk)
        self.rows[name] = self.rows.get(name, 0) + len(chunk)

    def commit(self, meta: dict[str, Any]) -> None:
        short = {name: n for name in self.names if (n := self.rows.get(name, 0)) != self.images}
        if short:  # a data set whose length says more (or fewer) images than it gives
            name, n = next(iter(short.items()))
            raise FeaturesError(f"the data gave {n:,} images for {name} where its length says {self.images:,}; "
                                "nothing was kept")
        self._commit(meta)

    def release(self) -> None:
        self.lock.release()
        remove_empty(self.made)


def check_output(out: str | Path, shapes: dict[str, tuple[int, ...]], images: int, overwrite: bool = False
                 ) -> FeatureSink:
    """Everything `open_sink` checks before it takes the lock, writing nothing (`features --dry-run`): the
    output, the free space, and that no other writer holds it."""
    out = Path(out)
    sink: FeatureSink = (_HDF5 if is_hdf5(out) else _NpyFolder)(out, shapes, images, overwrite)
    _check(sink)
    try:
        sink.lock.check_free("writer", "or choose another --out")
    except InUse as exc:
        raise FeaturesError(str(exc)) from None
    return sink


def _check(sink: FeatureSink) -> None:
    sink.check()
    existing = next(p for p in (sink.folder, *sink.folder.parents) if p.exists())
    need = feature_bytes(sink.shapes, sink.images)
    largest = need if isinstance(sink, _HDF5) else max(_array_bytes(sink.shapes, sink.images).values()) + (1 << 10)
    check_space(existing, need, f"the features of {sink.images:,} images", largest)


def open_sink(out: str | Path, shapes: dict[str, tuple[int, ...]], images: int, overwrite: bool = False
              ) -> FeatureSink:
    """A sink for `out` (a folder, or a file ending in .h5), its checks passed and its lock held."""
    sink = check_output(out, shapes, images, overwrite)
    try:
        sink.hold()
        _check(sink)  # again, now that no other writer can change it
        sink.begin()
    except BaseException as exc:
        sink.abort()
        sink.release()  # and the folders hold() made go
        if isinstance(exc, InUse):
            raise FeaturesError(str(exc)) from None
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):  # a read-only folder, say
            raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
        raise
    return sink


class _NpyFolder(FeatureSink):
    """A folder of `NAME.npy` files; written in `.cortexgraph-partial/`, moved out when complete."""

    def _lock(self) -> Lock:
        return Lock.in_folder(self.out)

    @property
    def folder(self) -> Path:
        return self.out

    def check(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise FeaturesError(f"{self.out} is a file; --out names a folder (or a file ending in .h5)")
        if not self.out.is_dir():
            return
        old = _old_output(self.out)
        if old and not self.overwrite:
            raise FeaturesError(f"{self.out} already holds {old}; replace it with --overwrite (once the new "
                                "features are complete), or choose another --out")
        for target in [*(self.out / f"{name}.npy" for name in self.names), self.out / MANIFEST]:
            check_target(target)  # a link or a device at a name to be written, a folder that cannot be

    def begin(self) -> None:
        staging = self.out / PARTIAL
        if staging.is_symlink() or staging.exists():  # a killed writer's: stale, since this one holds the lock
            _remove(staging)
        staging.mkdir()
        self.staging = staging
        self.files: dict[str, Any] = {}

    def _write(self, name: str, chunk: Any) -> None:
        import numpy as np
        from numpy.lib import format as npy

        if name not in self.files:
            f = open(self.staging / f"{name}.npy", "xb")
            npy.write_array_header_1_0(f, {"descr": npy.dtype_to_descr(chunk.dtype), "fortran_order": False,
                                           "shape": (self.images, *chunk.shape[1:])})
            self.files[name] = f
        self.files[name].write(np.ascontiguousarray(chunk).data)

    def _commit(self, meta: dict[str, Any]) -> None:
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        staged = self.staging / MANIFEST
        staged.write_text(json.dumps({**meta, "complete": True}, indent=2) + "\n")
        self.check()
        old = _old_manifest(self.out)
        with uninterrupted():  # renames and removals only: nothing here can run out of space
            (self.out / MANIFEST).unlink(missing_ok=True)  # the folder reads as incomplete until the end
            for name in self.files:
                os.replace(self.staging / f"{name}.npy", self.out / f"{name}.npy")
            os.replace(staged, self.out / MANIFEST)
            for name in set(_arrays(old) if old else []) - set(self.files):  # the replaced output's others
                (self.out / f"{name}.npy").unlink(missing_ok=True)
            self.staging.rmdir()

    def abort(self) -> None:
        for f in getattr(self, "files", {}).values():
            f.close()
        if hasattr(self, "staging"):
            _remove(self.staging)


class _HDF5(FeatureSink):
    """One HDF5 file; written to a temporary beside it, renamed when complete."""

    def _lock(self) -> Lock:
        return Lock(self.out.parent / f".{self.out.name}.lock", str(self.out))

    @property
    def folder(self) -> Path:
        return self.out.parent

    def check(self) -> None:
        try:
            import h5py  # noqa: F401
        except ImportError:
            raise FeaturesError(f"writing {self.out.name} needs h5py: pip install 'cortexgraph[hdf5]' (or write to a "
                                "folder of .npy files)") from None
        if self.out.parent.is_dir():  # (a missing folder is made, as for a folder of arrays)
            there = self.out.is_file() and not self.out.is_symlink()
            check_target(self.out, replace=self.overwrite, hint="replace it with --overwrite (once the new features "
                         "are complete), or choose another --out" if there else "")

    def begin(self) -> None:
        import h5py

        for stale in self.out.parent.glob(f".{self.out.name}.*.tmp"):  # killed writers': this one holds the lock
            stale.unlink(missing_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.out.parent, prefix=f".{self.out.name}.", suffix=".tmp")
        self.disk = GuardedFile(os.fdopen(fd, "r+b"))
        self.file = h5py.File(self.disk, "w")

    def _write(self, name: str, chunk: Any) -> None:
        self.disk.raise_failure()
        if name not in self.file:
            self.file.create_dataset(name, shape=(self.images, *chunk.shape[1:]), dtype=chunk.dtype,
                                     chunks=(min(len(chunk), self.images), *chunk.shape[1:]))
        start = self.rows.get(name, 0)
        self.file[name][start:start + len(chunk)] = chunk

    def _commit(self, meta: dict[str, Any]) -> None:
        self.file.attrs["features"] = json.dumps({**meta, "complete": True})
        self.file.close()
        self.disk.close()
        self.disk.raise_failure()
        publish(self.tmp, self.out, replace=self.overwrite)

    def abort(self) -> None:
        if hasattr(self, "file"):
            self.file.close()  # HDF5 sees no failure (GuardedFile), so closing is safe; the file goes anyway
            self.disk.close()
        if hasattr(self, "tmp"):
            Path(self.tmp).unlink(missing_ok=True)


def _old_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return _manifest((folder / MANIFEST).read_text())
    except OSError:
        return None


def _old_output(folder: Path) -> str:
    """What a folder holds that a new output would replace or mix with (empty: nothing)."""
    found = sorted(p.name for p in folder.iterdir() if p.name not in (FOLDER_LOCK, FOLDER_OWNER, PARTIAL))
    if not found:
        return ""
    meta = _old_manifest(folder)
    if meta is not None and isinstance(meta.get("images"), int):
        return f"the features of {meta['images']:,} images ({_some(meta['names'])})"
    return f"{len(found)} file{'s' * (len(found) > 1)} ({_some(found)})"


def _some(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


__all__ = ["FeaturesError", "OutputError", "check_output", "feature_bytes", "open_sink", "read_features"]
