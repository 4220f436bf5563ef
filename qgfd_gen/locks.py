"""One writer per output folder: an exclusive lock held for the whole run, so that two commands given the same
folder cannot interleave their rows. The lock is the operating system's (flock on `<folder>/.qgfd.lock`), so a
run that was killed holds nothing: its lock file may remain, but the next run takes it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from .errors import UsageError
from .io import PathLike

LOCK_NAME = ".qgfd.lock"


@contextlib.contextmanager
def folder_lock(folder: PathLike, what: str = "--out") -> Iterator[Path]:
    """Hold `folder`'s lock (making the folder) for the block; refuse at once, naming the holder's process id,
    if another process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UsageError(f"{what} {str(folder)!r} is in use by another run (process {holder}); wait for it to "
                             f"finish or give another {what}") from None
        try:  # the file may have been removed by the holder we waited on: lock the file that is there now
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield folder
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still held, so no one locks a file about to disappear
        handle.close()
