"""Files written whole or not at all: write to a temporary name beside the target, then rename."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

from .errors import UsageError

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yields a temporary path in the target's folder; renames it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; written files get the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: PathLike, data: Any) -> Path:
    """Standard JSON only: NaN and infinities become null (say why beside them where it matters)."""
    return write_text(path, json.dumps(_finite(data), indent=2, default=_jsonable, allow_nan=False) + "\n")


def write_csv(path: PathLike, rows: list[dict[str, Any]]) -> Path:
    """Rows as CSV: the columns in order of first appearance, floats to 6 significant digits, lists and
    mappings as JSON, missing cells empty."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return write_text(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def check_outputs(outputs: Mapping[str, Optional[PathLike]], inputs: Optional[Mapping[str, Optional[PathLike]]] = None,
                  folders: tuple[str, ...] = ()) -> None:
    """Before any work: every output (name -> path; None = not asked for) can be written, is none of the
    inputs, and no two outputs are the same path. Names in `folders` are folders, the rest files. Writing is
    tried for real (a temporary file in the nearest existing folder; missing folders are made later, when
    the output is written), so read-only places, /proc and folders given as files are found here, not after
    an hour of sampling, and a refused command leaves nothing behind."""
    taken: dict[Path, str] = {Path(p).resolve(): name for name, p in (inputs or {}).items() if p is not None}
    for name, path in outputs.items():
        if path is None:
            continue
        resolved = Path(path).resolve()
        if resolved in taken:
            raise UsageError(f"{name} {str(path)!r} is also {taken[resolved]}; give it a path of its own")
        taken[resolved] = name
        is_folder = name in folders
        if resolved.exists() and resolved.is_dir() != is_folder:
            kind = "a folder" if resolved.is_dir() else "a file"
            raise UsageError(f"{name} {str(path)!r} is {kind}; it must be {'a folder' if is_folder else 'a file path'}")
        _probe_writable(name, path, resolved if is_folder else resolved.parent)


def _probe_writable(name: str, path: PathLike, folder: Path) -> None:
    """Try a temporary file in the nearest folder that exists: nothing is left behind, and a parent that is a
    file, a read-only place or /proc are all refused."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{name} {str(path)!r} cannot be written: {str(existing)!r} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise UsageError(f"{name} {str(path)!r} cannot be written ({error.strerror or error}: {existing})") from None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def file_digest(path: PathLike, length: int = 16) -> str:
    """The first `length` hex digits of a file's SHA-256: identifies a checkpoint's content, not its name."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]
