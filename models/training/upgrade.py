"""Checkpoints of format 1 (before the record, the config dataclasses and the renamed chain buffers) rewritten
in the current format: the engine of `qgfd-upgrade`."""

from __future__ import annotations

import dataclasses
from typing import Any

from models.networks.graph_transformer import GraphTransformerConfig
from models.networks.unet import UNetConfig
from models.processes.gaussian_diffusion import NoiseSchedule
from models.training.optimization import OptimizerConfig
from qgfd_gen.attention import QGFDConfig
from qgfd_gen.checkpoints import FORMAT, RECORD_KEY
from qgfd_gen.errors import CheckpointError

OLD_DATAMODULE_KEY = "qgfd_datamodule"
BOOKKEEPING = ("_class_path", "_instantiator")


def _qgfd(value: Any) -> dict:
    fields = vars(value) if dataclasses.is_dataclass(value) else dict(value or {})
    fields = dict(fields)
    if "steps" in fields:
        fields["iterations"] = fields.pop("steps")
    if "eps" in fields:
        fields["tol"] = fields.pop("eps")
    return {k: v for k, v in fields.items() if k in QGFDConfig.__dataclass_fields__}


def _take(hparams: dict, config: type) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in hparams.items() if k in config.__dataclass_fields__}


def upgrade_hyperparameters(old: dict, kind: str) -> dict:
    new = {k: old[k] for k in BOOKKEEPING if k in old}
    new["qgfd"] = _qgfd(old.get("qgfd"))
    new["optimizer"] = _take(old, OptimizerConfig)
    if kind == "images":
        new.update(unet=_take(old, UNetConfig), schedule=_take(old, NoiseSchedule))
        new.update({k: old[k] for k in ("val_timesteps", "val_seed") if k in old})
    else:
        new.update(network=_take(old, GraphTransformerConfig), num_train_timesteps=old.get("diffusion_steps", 500))
        new.update({k: old[k] for k in ("dataset", "edge_weight", "val_samples", "val_sample_steps") if k in old})
    return new


def upgrade_checkpoint(checkpoint: dict) -> dict:
    """The same checkpoint in format 2 (a new dict; tensors are shared)."""
    if RECORD_KEY in checkpoint:
        raise CheckpointError(f"the checkpoint already has format {checkpoint[RECORD_KEY].get('format')}")
    state = checkpoint["state_dict"]
    kind = "molecules" if any(k.startswith("denoiser.") for k in state) else "images"
    renames = {"atom_diffusion.": "diffusion.atoms.", "bond_diffusion.": "diffusion.bonds.",
               "size_distribution": "diffusion.size_distribution", "statistics_set": "diffusion.statistics_set"}
    new_state = {}
    for key, value in state.items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        new_state[renames[prefix] + key[len(prefix):] if prefix else key] = value
    datamodule = checkpoint.get(OLD_DATAMODULE_KEY) or {}
    upgraded = {k: v for k, v in checkpoint.items() if k != OLD_DATAMODULE_KEY}
    upgraded.update(state_dict=new_state, hyper_parameters=upgrade_hyperparameters(checkpoint["hyper_parameters"], kind))
    upgraded[RECORD_KEY] = {"kind": kind, "format": FORMAT, "datamodule": datamodule.get("class_path")}
    return upgraded
