"""The folder a run writes: held by one run at a time, and never overwritten unless the user says so.

A run holds the folder's lock (`cortexgraph.lock`: an OS lock, released by the kernel when the
process ends, however it ends, with who holds it beside it), so that a second run on the same folder
says who is in the way. Holding the lock proves that no other run writes there, so temporary files
left in the folder are leftovers of killed runs and can go. The folders a run made are removed again if
it leaves them empty (a run refused before it wrote anything).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..atomic import OutputError, check_target, link_refusal, make_folders, remove_empty
from ..checkpoint import CheckpointError, read_checkpoint
from ..lock import InUse, Lock
from .logs import LOG_FOLDERS

RUN_FILES = ("checkpoint.pt", "metrics.json", "metrics.csv", "anytime.csv", "anytime.png")
TEMPORARY_PREFIXES = tuple(f".{name}." for name in RUN_FILES)  # atomic.py names its temporaries so


class FolderError(RuntimeError):
    """The run folder cannot be used: held by another run, holding a run, or not writable."""


class RunFolder:
    def __init__(self, path: Path):
        self.path = path
        self._lock = Lock.in_folder(path)
        self._made: list[Path] = []  # the folders hold() made, innermost first

    def hold(self) -> None:
        """Take the folder's lock (creating the folder), or say which run holds it."""
        self._made = make_folders(self.path)
        try:
            self._lock.hold("run", "or choose another --out")
        except BaseException as exc:
            remove_empty(self._made)
            if isinstance(exc, InUse):
                raise FolderError(str(exc)) from None
            raise

    def take(self, resume: bool, overwrite: bool) -> str | None:
        """Hold the folder for a run, or FolderError: held by another run, a link planted where the lock or
        the owner record goes, not writable, or holding a run the user did not name (`resume`, `overwrite`).
        Returns what `overwrite` will replace, described (None: nothing)."""
        try:
            self.hold()
        except OutputError as exc:
            raise FolderError(str(exc)) from None
        except OSError as exc:
            raise FolderError(f"cannot write to {self.path}: {exc.strerror or exc}") from None
        self.remove_stale_temporaries()
        existing = self.existing_run()
        if not existing:
            return None
        described = self._describe_run(existing)
        if not (resume or overwrite):
            raise FolderError(f"{self.path} already holds a run ({described}); continue it with --resume, "
                              "replace it with --overwrite, or choose another --out")
        return described if overwrite else None

    def _describe_run(self, files: list[str]) -> str:
        try:
            payload = read_checkpoint(self.path / "checkpoint.pt")
            planned = payload.get("settings", {}).get("epochs")
            return f"{payload.get('epoch', 0)} of {planned} epochs trained" if planned else ", ".join(files)
        except CheckpointError:
            return ", ".join(files)

    def check_writable(self, need: int, what: str) -> None:
        """FolderError now, not after an epoch, if the run's files cannot be written here or `what` (`need`
        bytes) would not fit."""
        try:
            self.check_files()
        except OutputError as exc:  # a link, a folder or a device where a file of the run goes
            raise FolderError(str(exc)) from None
        except OSError as exc:
            raise FolderError(f"cannot write to {self.path}: {exc.strerror or exc}") from None
        free = shutil.disk_usage(self.path).free
        if free < need:
            raise FolderError(f"{self.path} has {free / 1e6:.1f} MB free; {what} needs about {need / 1e6:.1f} MB")

    def release(self) -> None:
        if self._lock.held:
            self._lock.release()
            remove_empty(self._made)

    def check_files(self) -> None:
        """The run's files may be replaced (atomically), never written through: refuse a link, a folder or
        a device at any of their names, or a folder that cannot be written, now, not at the first checkpoint
        (the folder is tried with an unnamed file: nothing planted in it is followed)."""
        for name in RUN_FILES:
            check_target(self.path / name)
        for name in LOG_FOLDERS:  # written inside, by the logs' own writers: a link there would be followed
            if (self.path / name).is_symlink():
                raise link_refusal(self.path / name)

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporaries of checkpoints and metrics: stale, since this process holds the lock."""
        assert self._lock.held, "only the run holding the folder may clean it"
        stale = [p for p in self.path.iterdir() if p.name.startswith(TEMPORARY_PREFIXES) and p.suffix == ".tmp"]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def existing_run(self) -> list[str]:
        """The files of a run already in the folder (none: the folder holds no run)."""
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def clear_run(self, keep: tuple[str, ...] = ()) -> None:
        """Remove the previous run's files but `keep` (the user asked for it: --overwrite), and its logs' folders
        (a link planted at their name is removed, never followed)."""
        for name in RUN_FILES:
            if name not in keep:
                (self.path / name).unlink(missing_ok=True)
        for name in LOG_FOLDERS:
            folder = self.path / name
            if folder.is_symlink() or folder.is_file():
                folder.unlink()
            elif folder.is_dir():
                shutil.rmtree(folder)
