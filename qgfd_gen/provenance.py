"""Which code made a result: the git commit of the project's checkout (with `+dirty` when tracked files differ
from it), or the installed package's version outside a checkout. Read once per process: the code a process runs
is the code it imported, whatever the work tree holds later."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def code_version(root: Path = PROJECT_ROOT) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root.resolve():
            raise subprocess.SubprocessError("installed inside another checkout (a virtualenv in a repository)")
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        try:
            return f"qgfd-gen {metadata.version('qgfd-gen')}"
        except metadata.PackageNotFoundError:
            return "unknown"
