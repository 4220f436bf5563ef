"""Checkpoints remember where their data came from, so that samplers and evaluators can rebuild the
data module (training SMILES for novelty, test images for FID and NLL) from the checkpoint alone."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Optional

import lightning as L

KEY = "qgfd_datamodule"


def record_datamodule(module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
    trainer = module._trainer
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    if datamodule is not None and hasattr(datamodule, "hparams"):
        cls = type(datamodule)
        checkpoint[KEY] = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(datamodule.hparams)}


def datamodule_from_checkpoint(checkpoint: dict[str, Any], **overrides) -> Optional[L.LightningDataModule]:
    """The data module a checkpoint was trained on (None if it does not say), with `overrides` applied
    where the class takes them (None = keep the saved value)."""
    record = checkpoint.get(KEY)
    if record is None:
        return None
    module_name, _, class_name = record["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    accepted = inspect.signature(cls.__init__).parameters
    # LightningCLI adds bookkeeping entries (_class_path, _instantiator) to the saved arguments
    args = {k: v for k, v in record["init_args"].items() if k in accepted}
    args.update({k: v for k, v in overrides.items() if v is not None and k in accepted})
    return cls(**args)
