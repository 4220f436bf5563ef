"""Loading trained models for sampling and evaluation, with plain errors for wrong files."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    pass


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint ({type(error).__name__}: {error})") from None


def load_model(path: str | Path, kind: str, device: str = "cpu"):
    """An ImageDiffusion (kind='images') or MoleculeDiffusion (kind='molecules') with its weights and EMA."""
    from models import ImageDiffusion, MoleculeDiffusion

    cls = {"images": ImageDiffusion, "molecules": MoleculeDiffusion}[kind]
    checkpoint = read_checkpoint(path)
    state = checkpoint.get("state_dict", {})
    is_molecule = any(k.startswith("denoiser.") for k in state)
    if (kind == "molecules") != is_molecule:
        other = "molecules" if is_molecule else "images"
        raise CheckpointError(f"{str(path)!r} holds a {other} model; use the `{other}` subcommand")
    accepted = inspect.signature(cls.__init__).parameters
    # LightningCLI stores bookkeeping entries (_class_path, _instantiator) with the arguments
    model = cls(**{k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted})
    model.load_state_dict(state)
    model.checkpoint_record = checkpoint
    return model.to(device).eval()
