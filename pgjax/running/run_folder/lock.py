"""One writer per run folder: an exclusive lock file inside it, held for the whole of a training command.

    with FolderLock() as hold:
        hold.take(run_dir)      # FolderInUse (a ValueError) if another process holds it
        ...                     # train, checkpoint, write the results

The lock is `filelock.FileLock` on `<run_dir>/.pgjax.lock` taken without
waiting (timeout 0): a second command on the same folder stops at once with a
one-line message naming the holder's process id (written into the lock file).
The file is not one of a run's files (`pgjax.running.run_folder.files.RUN_FILES`), so a
folder holding only it holds no run; it is removed when the hold ends.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pgjax.running.run_folder.links import inside

LOCK_FILE = ".pgjax.lock"
_PROBE_FILE = ".pgjax-write-probe"


class FolderInUse(ValueError):
    """Another process holds the run folder's lock."""


def _holder_pid(path: Path) -> int | None:
    """The process id written in a lock file, or None if it cannot be told."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _in_use_message(folder: Path, pid: int | None) -> str:
    holder = f" (pid {pid})" if pid is not None and pid != os.getpid() else ""
    return (f"{folder} is in use by another pgjax process{holder}; wait for it to finish or choose another "
            "--out")


class FolderLock:
    """An exclusive hold on (at most) one run folder; a context manager that lets go on exit.

    Attributes:
      folder: the folder held, or None.
    """

    def __init__(self):
        self.folder: Path | None = None
        self._lock = None

    def take(self, folder: Path) -> None:
        """Hold `folder` (which must exist) until `release`; holding it already does nothing.

        Raises:
          FolderInUse: another process holds it (the message names its pid when known).
          ValueError: the lock file cannot be made there (the folder is not writable), or is a link
            leading outside the folder (`pgjax.running.run_folder.links.inside`).
        """
        import filelock

        folder = Path(folder)
        if self.folder is not None:
            if self.folder.absolute() == folder.absolute():
                return
            raise RuntimeError(f"already holding {self.folder}, cannot also hold {folder}")
        path = inside(folder, folder / LOCK_FILE)  # a lock file linked elsewhere would truncate what it leads to
        pid = _holder_pid(path)  # read first: an older filelock truncates the file when it tries the lock
        lock = filelock.FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise FolderInUse(_in_use_message(folder, pid or _holder_pid(path))) from None
        except OSError as error:
            raise ValueError(f"cannot write to {folder}: {error.strerror or error}") from None
        self._lock, self.folder = lock, folder
        with contextlib.suppress(OSError):
            path.write_text(f"{os.getpid()}\n")

    def release(self) -> None:
        """Let go of the folder held (if any) and remove its lock file."""
        if self._lock is None:
            return
        with contextlib.suppress(OSError):  # removed while still held: no one can lock the old file after us
            (self.folder / LOCK_FILE).unlink()
        self._lock.release()
        self._lock, self.folder = None, None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def check_writable(folder: Path) -> None:
    """Raise ValueError (one line) unless `folder` and every folder under its checkpoints/ can be written.

    Each folder must allow writing (`os.access`); `folder` itself is also tried
    with a probe file (a read-only file system refuses even the superuser).
    """
    from pgjax.running.run_folder.files import CHECKPOINT_DIR

    folder = Path(folder)
    checkpoints = folder / CHECKPOINT_DIR
    folders = [folder]
    if checkpoints.is_dir():
        folders.append(checkpoints)
        folders.extend(p for p in sorted(checkpoints.rglob("*")) if p.is_dir())
    for path in folders:
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{path} is read-only: make it writable (chmod -R u+w {folder}) to resume the run "
                             "there, or copy the folder and resume the copy")
    probe = inside(folder, folder / _PROBE_FILE)
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write to {folder}: {error.strerror or error}; make it writable to resume the run "
                         "there, or copy the folder and resume the copy") from None


def hold_new_folder(out: Path, hold: FolderLock) -> Path | None:
    """Make `out` (and its missing parents) and hold it for a new run, before `prepare_out_dir` looks in it.

    Returns:
      The outermost folder this command made (`out` or one of its parents), for
      `remove_made_folders`; None if `out` was there already.

    Raises:
      FolderInUse: another process holds it. ValueError: it cannot be made or written (e.g. a name too long).
    """
    try:
        if out.exists() and not out.is_dir():
            return None  # `prepare_out_dir` says what is wrong
        made = None
        for folder in (out, *out.parents):
            if folder.exists():
                break
            made = folder
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot write to --out {out}: {error.strerror or error}") from None
    try:
        hold.take(out)
    except BaseException:
        remove_made_folders(out, made)
        raise
    return made


def remove_made_folders(out: Path, made: Path | None) -> None:
    """Remove `out` and its parents up to `made` (`hold_new_folder`'s answer), each only if empty."""
    if made is None:
        return
    for folder in (out, *out.parents):
        with contextlib.suppress(OSError):
            folder.rmdir()
        if folder == made:
            return
