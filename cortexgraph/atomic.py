"""The rules every file cortexgraph writes keeps, in one place.

- Whole or not at all: a file is written to a temporary beside it, flushed, then renamed over its
  name (`atomic_path`); a failure leaves the old file as it was and no temporary behind.
- Never through a link, never over what is not a file: a target that is a symbolic link, a folder, a
  device (`/dev/null`), a pipe or a socket is refused with one line naming it (`check_target`). Files
  the project makes inside its own folders (locks, owner records) follow no link either (`lock.py`). A
  folder the user names (`--out`) may itself be a link (a run folder on another disk): that link is theirs.
- Nothing replaced that the user did not name: `replace=False` refuses a target that exists; folders a
  command made are removed again when it is refused (`make_folders`, `remove_empty`).
- Size first: where the size is known, the free space is checked before a byte is written
  (`check_space`).
- One line on failure: `OutputError`, an `OSError` whose message names the file and the reason.
- A commit is not cut short: its few renames run with Ctrl-C and SIGTERM held off (`uninterrupted`); a
  writer that cannot survive a failed write (HDF5) writes through `GuardedFile`, which keeps the first
  failure for the caller to raise.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .units import format_bytes

# Kept free beyond what a write needs: a disk filled to its last byte breaks other programs.
MARGIN = 1 << 20


class OutputError(OSError):
    """A file that cannot or must not be written: one line says which and why. `refused` is True
    where nothing was tried (the target is a link, a device, already there, or the disk too full)."""

    def __init__(self, message: str, refused: bool = True):
        super().__init__(message)
        self.refused = refused

    def __str__(self) -> str:
        return str(self.args[0])


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_target(path: str | Path, replace: bool = True, hint: str = "") -> None:
    """Refuse to write `path` where it is a link, anything but a regular file, or (unless `replace`) already
    there; where its folder is missing or cannot be written (tried with an unnamed file: permissions do not
    say, for root or on a read-only mount). `hint` ends every refusal but a link's."""
    path = Path(path)
    hint = f"; {hint}" if hint else ""
    try:
        info = path.lstat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise link_refusal(path)
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise OutputError(f"cannot write {path}: it is {_kind(info.st_mode)}, not a file{hint}")
    if info is not None and not replace:
        raise OutputError(f"cannot write {path}: it already exists{hint}")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: there is no folder {path.parent}")
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def link_refusal(path: Path) -> OutputError:
    return OutputError(f"cannot write {path}: it is a symbolic link (to {os.readlink(path)}); cortexgraph never "
                       "writes through a link: remove it, or name another file")


def check_space(folder: str | Path, need: int, what: str, largest: int | None = None) -> None:
    """Refuse, before writing, `what` of `need` bytes where `folder`'s disk has less free (with a margin), or
    where its largest file (`largest`, default `need`) is past the process's file size limit (`ulimit -f`)."""
    free = shutil.disk_usage(folder).free
    if free < need + MARGIN:
        raise OutputError(f"cannot write {what}: it needs about {format_bytes(need)} and {folder} has "
                          f"{format_bytes(free)} free")
    largest = need if largest is None else largest
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and largest > limit:
        raise OutputError(f"cannot write {what}: a file of it would take about {format_bytes(largest)}, past this "
                          f"process's limit on the size of files of {format_bytes(limit)} (ulimit -f)")


@contextmanager
def atomic_path(path: str | Path, replace: bool = True, hint: str = "") -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces `path` in one rename (with the usual
    permissions, flushed to disk); on failure it is removed and `path` is left as it was. `path` is
    checked first and again just before the rename (`check_target`)."""
    path = Path(path)
    check_target(path, replace, hint)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        publish(tmp, path, replace, hint)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish(tmp: str | Path, path: Path, replace: bool = True, hint: str = "") -> None:
    """Rename a finished temporary file over `path`: the usual permissions (mkstemp makes it private),
    flushed to disk, `path` checked again just before (a link or a device put there meanwhile)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    check_target(path, replace, hint)
    os.replace(tmp, path)


def make_folders(path: Path) -> list[Path]:
    """Make `path` and its missing parents; the folders made, innermost first (for `remove_empty`)."""
    made = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    return made


def remove_empty(folders: list[Path]) -> None:
    """Remove folders a command made, innermost first, while they are empty: a refused or failed command
    leaves nothing behind, and never a folder the user made or one that holds anything."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def write_file(path: str | Path, data: bytes | str, replace: bool = True, hint: str = "") -> None:
    """Write `data` to `path` by the rules above; any failure is one OutputError."""
    data = data.encode() if isinstance(data, str) else data
    path = Path(path)
    try:
        with atomic_path(path, replace, hint) as tmp, open(tmp, "wb") as f:  # the target checked first
            check_space(path.parent, len(data), str(path))
            f.write(data)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", refused=False) from None


class GuardedFile:
    """The file HDF5 writes through (h5py's file-object driver). HDF5 does not survive a failed write: it
    retries from its destructors, floods stderr and crashes the process (seen under `ulimit -f`). So the
    first failure is kept here and every later write is dropped as if done; the writer then raises it
    (`raise_failure`) and removes the file, which is never used."""

    def __init__(self, f: Any):
        self.f, self.failure = f, None

    def write(self, data: Any) -> int:
        if self.failure is None:
            try:
                return self.f.write(data)
            except OSError as exc:
                self.failure = exc
        return len(memoryview(data))

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)

    def readinto(self, buffer: Any) -> int:
        return self.f.readinto(buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def truncate(self, size: int | None = None) -> int:
        if self.failure is None:
            try:
                return self.f.truncate(size)
            except OSError as exc:
                self.failure = exc
        return size if size is not None else self.f.tell()

    def flush(self) -> None:
        if self.failure is None:
            try:
                self.f.flush()
                os.fsync(self.f.fileno())
            except OSError as exc:
                self.failure = exc

    def close(self) -> None:
        self.flush()
        try:
            self.f.close()
        except OSError as exc:  # the last buffered bytes failed
            self.failure = self.failure or exc

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM held off, and sent again right after, so that a commit's few renames finish.
    (Python's handlers, not the signal mask: torch's threads would take a signal the main thread blocks.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.signal(s, lambda number, frame: received.append(number)) for s in held}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
        for number in sorted(set(received), key=lambda n: n == signal.SIGINT):  # SIGINT's exception last
            # To this thread (os.kill may hand it to another of the process's threads, and the exception then
            # comes some time later): its handler runs before raise_signal returns.
            signal.raise_signal(number)
