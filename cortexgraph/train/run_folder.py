"""The folder a run writes: held by one run at a time, and never overwritten unless the user says so.

A run holds a file lock on its folder (an OS lock, released by the kernel when
the process ends, however it ends), and writes who holds it beside the lock,
so that a second run on the same folder says who is in the way. Holding the
lock proves that no other run writes there, so temporary files left in the
folder are leftovers of killed runs and can go.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

LOCK = ".cortexgraph.lock"
OWNER = ".cortexgraph.owner"
RUN_FILES = ("checkpoint.pt", "metrics.json", "metrics.csv", "anytime.csv", "anytime.png")
TEMPORARY_PREFIXES = tuple(f".{name}." for name in RUN_FILES)  # atomic.py names its temporaries so


class FolderError(RuntimeError):
    """The run folder cannot be used: held by another run, holding a run, or not writable."""


class RunFolder:
    def __init__(self, path: Path):
        self.path = path
        self._lock: FileLock | None = None

    def hold(self) -> None:
        """Take the folder's lock (creating the folder), or say which run holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path / LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise FolderError(f"{self.path} is in use by another run ({self._owner()}); wait for it to end, "
                              "or choose another --out") from None
        self._lock = lock
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        (self.path / OWNER).write_text(json.dumps(owner) + "\n")

    def release(self) -> None:
        if self._lock is not None:
            (self.path / OWNER).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    def _owner(self) -> str:
        try:
            owner = json.loads((self.path / OWNER).read_text())
            return f"process {owner['pid']} on {owner['host']}, since {owner['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that has not said who it is yet"

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporaries of checkpoints and metrics: stale, since this process holds the lock."""
        assert self._lock is not None, "only the run holding the folder may clean it"
        stale = [p for p in self.path.iterdir() if p.name.startswith(TEMPORARY_PREFIXES) and p.suffix == ".tmp"]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def existing_run(self) -> list[str]:
        """The files of a run already in the folder (none: the folder holds no run)."""
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def clear_run(self, keep: tuple[str, ...] = ()) -> None:
        """Remove the previous run's files but `keep` (the user asked for it: --overwrite)."""
        for name in RUN_FILES:
            if name not in keep:
                (self.path / name).unlink(missing_ok=True)
