"""Reading checkpoints safely, and what a checkpoint says about itself.

A checkpoint is read with `torch.load(weights_only=True)`: tensors and plain data only, so a file
holding a pickled object with `__reduce__` is refused before anything in it runs. What the workbench
writes into a checkpoint (besides Lightning's own entries) is one plain record under RECORD_KEY: the
kind of model, the format version, and the class path of the data module it was trained on (the models
layer resolves it, and only inside this project's data package).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, Optional

import torch

from .errors import CheckpointError
from .provenance import code_version

RECORD_KEY = "qgfd_gen"
FORMAT = 2
KINDS = ("images", "molecules", "graphs")
KIND_NAMES = {"images": "an image", "molecules": "a molecule", "graphs": "a graph"}


def read_checkpoint(path: str | Path, mmap: bool = True) -> dict[str, Any]:
    """The checkpoint's contents, tensors on the CPU (memory-mapped when `mmap`: reading the record of a
    large file costs next to nothing). Refuses anything that is not a plain-data checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist" if not path.exists()
                              else f"checkpoint {str(path)!r} is not a file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in lines if "Unsupported global" in line), lines[0] if lines else "unpickling refused")
        reason = reason.split(" Please use")[0]  # torch goes on to say how to load it anyway; we do not
        raise CheckpointError(f"{str(path)!r} was refused: it holds more than tensors and plain data "
                              f"({reason}); only checkpoints written by this workbench are loaded") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else 'truncated or empty'})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{str(path)!r} is not a Lightning checkpoint (no state_dict); "
                              f"give a .ckpt written by `lightning fit`")
    return checkpoint


def record_of(checkpoint: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The workbench's record in a checkpoint, or a CheckpointError saying how to convert an old one."""
    record = checkpoint.get(RECORD_KEY)
    if not isinstance(record, dict) or record.get("kind") not in KINDS:
        raise CheckpointError(
            f"{str(path)!r} carries no qgfd-gen record (kind, format): it was written before format {FORMAT} "
            f"or by another program. Convert an older qgfd-gen checkpoint with "
            f"`qgfd-upgrade {path} NEW.ckpt`")
    if record.get("format", 0) > FORMAT:
        raise CheckpointError(f"{str(path)!r} has format {record['format']}; this qgfd-gen reads up to {FORMAT}: update it")
    return record


def check_kind(record: dict[str, Any], expected: str, path: str | Path, hint: Optional[str] = None) -> None:
    """Refuse a checkpoint of the other kind; `hint` says what to do instead (default: the other subcommand;
    `{found}` in it becomes "a molecule" / "an image", the kind the file holds)."""
    found = record["kind"]
    if found != expected:
        hint = hint.format(found=KIND_NAMES[found]) if hint else f"use the `{found}` subcommand"
        raise CheckpointError(f"{str(path)!r} holds {KIND_NAMES[found]} model, not {KIND_NAMES[expected]} model; {hint}")


def check_file(path: str | Path, expected: str, hint: Optional[str] = None) -> dict[str, Any]:
    """A cheap, safe look at a checkpoint file before anything is built from it: readable plain data, this
    workbench's current format, a model of the `expected` kind. Returns its record."""
    record = record_of(read_checkpoint(path), path)
    check_kind(record, expected, path, hint)
    return record


def make_record(kind: str, datamodule: Optional[object]) -> dict[str, Any]:
    """The plain record a LightningModule writes into its checkpoints (see `on_save_checkpoint`)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {', '.join(KINDS)}")
    cls = type(datamodule) if datamodule is not None else None
    return {"kind": kind, "format": FORMAT,
            "datamodule": f"{cls.__module__}.{cls.__qualname__}" if cls is not None else None,
            "code": code_version()}  # which code trained it (qgfd_gen.provenance)
