"""One writer at a time: the lock every command that writes an output holds, and who holds it.

A lock is an OS lock (`flock`) on a lock file, released by the kernel when its holder ends, however it
ends (SIGKILL included); beside it the holder writes who it is, so that a second writer says who is in
the way. Neither file is ever written through a link planted at its name: the lock file is opened with
`O_NOFOLLOW` and never written, the owner record is a new file renamed over its name.

The holder removes the lock file when it lets go, so that a refused or finished command leaves nothing
behind. That is safe only because taking a lock checks, once the OS lock is held, that the file is still
the one at its name: a process that opened the file just before its holder removed it holds a lock on a
file nobody else will open, sees so, and tries again on the new one. (filelock, which this replaced, once
removed its lock files without that check, and two holders were seen at once: filelock issues 574, 577.)
POSIX only (`fcntl`), as the rest of the run folder's guarantees.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path

from .atomic import OutputError, atomic_path, link_refusal

FOLDER_LOCK, FOLDER_OWNER = ".cortexgraph.lock", ".cortexgraph.owner"  # a locked folder's own files


class InUse(RuntimeError):
    """Another process holds the lock: the message names it."""


class Lock:
    """The lock at `path` (and its owner record at `path` with `.owner` for `.lock`), for `what` (the
    output, as messages name it)."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = Path(path), what
        self.owner = self.path.with_suffix(".owner")
        self._fd: int | None = None
        self._owner_inode: int | None = None

    @classmethod
    def in_folder(cls, folder: Path) -> Lock:
        return cls(folder / FOLDER_LOCK, str(folder))

    @property
    def held(self) -> bool:
        return self._fd is not None

    def hold(self, who: str = "run", hint: str = "") -> None:
        """Take the lock, or raise InUse naming its holder (`who`: "run", "writer", as messages say)."""
        for _ in range(8):  # each retry means a holder let go just then; eight in a row do not happen
            fd = self._open(os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._in_use(who, hint) from None
            if self._still_named(fd):
                break
            os.close(fd)
        else:
            raise InUse(f"{self.what} is being taken and let go by other writers again and again; try later")
        self._fd = fd
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:  # a new file renamed over the name: never written through a link, symbolic or hard
            with atomic_path(self.owner) as tmp, open(tmp, "w") as f:  # (too small to check the free space)
                f.write(json.dumps(owner) + "\n")
            self._owner_inode = os.stat(self.owner, follow_symlinks=False).st_ino
        except OSError:  # a link or a folder planted at its name: refused, and left where it is
            self.release()
            raise

    def _open(self, flags: int) -> int:
        """The lock file, opened without following a link or blocking on a pipe; anything but a file refused."""
        try:
            fd = os.open(self.path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP or self.path.is_symlink():
                raise link_refusal(self.path) from None
            if exc.errno in (errno.ENOENT, errno.ENXIO) and not flags & os.O_CREAT:
                raise
            raise OutputError(f"cannot write {self.what}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OutputError(f"cannot write {self.what}: {self.path} is not a file")
        return fd

    def _still_named(self, fd: int) -> bool:
        try:
            return os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Let go; remove the lock and owner files, where they are still this holder's (a folder removed and
        made again meanwhile holds another holder's)."""
        if self._fd is None:
            return
        try:
            if self._owner_inode is not None and os.stat(self.owner, follow_symlinks=False).st_ino == self._owner_inode:
                self.owner.unlink()
        except FileNotFoundError:
            pass
        self._owner_inode = None
        if self._still_named(self._fd):
            self.path.unlink(missing_ok=True)  # while still held: see the module's docstring
        os.close(self._fd)
        self._fd = None

    def _in_use(self, who: str, hint: str) -> InUse:
        return InUse(f"{self.what} is in use by another {who} ({self.holder()}); wait for it to end"
                     + (f", {hint}" if hint else ""))

    def holder(self) -> str:
        """Who holds the lock, in words ("process 4242 on host, since ..."), read without following links."""
        try:
            fd = os.open(self.owner, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                owner = json.loads(f.read(4096))
            return f"process {owner['pid']} on {owner['host']}, since {owner['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that has not said who it is yet"

    def check_free(self, who: str = "run", hint: str = "") -> None:
        """Raise InUse where another process holds the lock; take nothing, write nothing (a dry run)."""
        try:
            fd = self._open(os.O_RDONLY)
        except FileNotFoundError:
            return  # no lock file: nobody holds it
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._in_use(who, hint) from None
        finally:
            os.close(fd)
