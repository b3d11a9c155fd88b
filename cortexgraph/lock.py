"""One writer at a time: the lock every command that writes an output holds, and who holds it.

A lock is an OS file lock (filelock), released by the kernel when its holder ends, however it ends
(SIGKILL included); beside it the holder writes who it is, so that a second writer says who is in
the way. Neither file is ever opened through a link planted at its name (`atomic.open_lock`,
`atomic.open_new`). A lock the holder made in a place it made (a new folder, a lock file beside an
output file) is removed again on release, so a refused command leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from .atomic import open_lock, open_new


class InUse(RuntimeError):
    """Another process holds the lock: the message names it."""


class Lock:
    """The lock at `path` (and its owner record at `path` with `.owner` for `.lock`), for `what` (the
    output, as messages name it)."""

    def __init__(self, path: Path, what: str, tidy: bool = False):
        self.path, self.what = path, what
        self.owner = path.with_suffix(".owner")
        self.tidy = tidy  # remove the lock file on release (it lives somewhere the holder made for it)
        self._lock: FileLock | None = None
        self._wrote_owner = False

    @property
    def held(self) -> bool:
        return self._lock is not None

    def hold(self, who: str = "run", hint: str = "") -> None:
        """Take the lock, or raise InUse naming its holder (`who`: "run", "writer", as messages say)."""
        made = not self.path.exists()
        self.tidy = self.tidy or made
        open_lock(self.path)
        lock = FileLock(str(self.path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise InUse(f"{self.what} is in use by another {who} ({self.holder()}); wait for it to end"
                        + (f", {hint}" if hint else "")) from None
        except BaseException:
            if made:
                self.path.unlink(missing_ok=True)
            raise
        self._lock = lock
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            open_new(self.owner, json.dumps(owner) + "\n")
        except OSError:  # a link planted at its name: refused, and left where it is
            self._wrote_owner = False
            self.release()
            raise
        self._wrote_owner = True

    def release(self) -> None:
        if self._lock is None:
            return
        if self._wrote_owner:
            self.owner.unlink(missing_ok=True)
        if self.tidy:  # before releasing: a process waiting for it then finds the lock gone, and takes a new one
            self.path.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    def holder(self) -> str:
        try:  # never through a link, nor blocking on a pipe planted at its name
            fd = os.open(self.owner, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                owner = json.loads(f.read(4096))
            return f"process {owner['pid']} on {owner['host']}, since {owner['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that has not said who it is yet"
