"""Loading trained models and their data modules from checkpoints, through Lightning's own
`load_from_checkpoint`, after a safe look at what the file says it holds."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch

from qgfd_gen.checkpoints import read_checkpoint, record_of
from qgfd_gen.errors import CheckpointError

from .base import DiffusionModule

# each kind's module, imported when that kind is loaded: an image or graph checkpoint loads without RDKit
MODULES: dict[str, tuple[str, str]] = {"images": (".image_diffusion", "ImageDiffusion"),
                                       "molecules": (".molecule_diffusion", "MoleculeDiffusion"),
                                       "graphs": (".graph_generation", "GraphGeneration")}


def module_class(kind: str) -> type[DiffusionModule]:
    module, name = MODULES[kind]
    return getattr(importlib.import_module(module, __package__), name)
DATAMODULE_PACKAGE = "datamodules"


def load_model(path: str | Path, kind: str, device: str | torch.device = "cpu") -> DiffusionModule:
    """The model of a checkpoint written by `lightning fit` (weights and EMA), refusing files that are not
    plain-data checkpoints or hold the other kind of model."""
    return module_class(kind).load_from_checkpoint(path, map_location=torch.device(device), weights_only=True).eval()


def load_datamodule(path: str | Path, **overrides: Any) -> Optional[L.LightningDataModule]:
    """The data module a checkpoint was trained on (None if it names none), with `overrides` applied where
    its class takes them (None = keep the saved value). Only classes of this project's data package load."""
    cls = datamodule_class(record_of(read_checkpoint(path), path))
    if cls is None:
        return None
    changes = {k: v for k, v in overrides.items() if v is not None}
    return cls.load_from_checkpoint(path, weights_only=True, **changes)


def datamodule_class(record: dict[str, Any]) -> Optional[type]:
    class_path = record.get("datamodule")
    if class_path is None:
        return None
    module_name, _, class_name = str(class_path).rpartition(".")
    if module_name != DATAMODULE_PACKAGE and not module_name.startswith(DATAMODULE_PACKAGE + "."):
        raise CheckpointError(f"the checkpoint names data module {class_path!r}, outside this project's "
                              f"`{DATAMODULE_PACKAGE}` package; refused")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, L.LightningDataModule)):
        raise CheckpointError(f"the checkpoint names data module {class_path!r}, which is no data module here")
    return cls
