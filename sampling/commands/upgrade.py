"""Convert a checkpoint written before checkpoint format 2 (flat hyper-parameters, QGFD `steps`/`eps`,
no qgfd-gen record) into the current format, so that `load_from_checkpoint` and the commands take it.

    qgfd-upgrade OLD.ckpt NEW.ckpt

Only run it on checkpoints you trust: old checkpoints hold pickled config objects, which are read here
with the project's own config class as the one allowed type.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Optional

import torch

from qgfd_gen.attention import QGFDConfig
from qgfd_gen.checkpoints import FORMAT, RECORD_KEY
from qgfd_gen.errors import CheckpointError, command
from qgfd_gen.io import atomic_path

from models.processes.gaussian_diffusion import NoiseSchedule
from models.networks.graph_transformer import GraphTransformerConfig
from models.training.optimization import OptimizerConfig
from models.networks.unet import UNetConfig

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


@command
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="qgfd-upgrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    args = parser.parse_args(argv)
    if Path(args.old).resolve() == Path(args.new).resolve():
        raise CheckpointError(f"the new checkpoint {args.new!r} would overwrite the old one; give another path")
    if not Path(args.old).is_file():
        raise CheckpointError(f"checkpoint {args.old!r} does not exist")
    with torch.serialization.safe_globals([QGFDConfig]):
        old = torch.load(args.old, map_location="cpu", weights_only=True)
    with atomic_path(args.new) as tmp:
        torch.save(upgrade_checkpoint(old), tmp)
    print(f"wrote {args.new} (format {FORMAT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
