"""Image models out of the workbench and back: a diffusers pipeline folder, and the loader that restores QGFD.

    export_pipeline(model, "digits-pipeline")     # DDIMPipeline.save_pretrained + the QGFD settings
    pipeline = load_pipeline("digits-pipeline")   # a working DDIMPipeline with QGFD processors and alphas
    images = pipeline(batch_size=16, generator=torch.Generator().manual_seed(0), output_type="np").images

The folder is what diffusers writes (model_index.json, unet/, scheduler/), the U-Net holding the EMA
weights (learned QGFD alphas included) and the scheduler the model's DDIM. The workbench's own settings
(U-Net and QGFD configs) sit in unet/config.json under "qgfd_gen": plain diffusers ignores that key with
a warning naming it. A vanilla model's folder loads in plain diffusers with no project code; a QGFD or
transformer-block model needs `load_pipeline` (plain diffusers would rebuild it with vanilla attention).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel
from safetensors.torch import load_file

from models.networks.unet import UNetConfig, build_unet
from qgfd_gen.attention import QGFDConfig
from qgfd_gen.errors import CheckpointError, UsageError

from .image_diffusion import ImageDiffusion

FORMAT = "qgfd-gen-pipeline/1"


def export_pipeline(model: ImageDiffusion, folder: str | Path, use_ema: bool = True,
                    source: Optional[dict[str, Any]] = None) -> Path:
    """Write the pipeline folder whole or not at all (built beside it, then renamed into place)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"{str(folder)!r} exists and is not an empty folder; give a new --out")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scheduler = model.diffusion.sampler_scheduler("ddim", 50)
    unet = model.sampling_network(use_ema)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        DDIMPipeline(unet=unet, scheduler=scheduler).save_pretrained(staging, safe_serialization=True)
        config_path = staging / "unet" / "config.json"
        config = json.loads(config_path.read_text())
        config["qgfd_gen"] = {"format": FORMAT, "unet": dict(model.hparams["unet"]), "qgfd": dict(model.hparams["qgfd"]),
                              "weights": "ema" if use_ema else "raw", "source": source or {}}
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if folder.exists():
            folder.rmdir()
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def load_pipeline(folder: str | Path, device: str | torch.device = "cpu") -> DDIMPipeline:
    """A DDIMPipeline from an exported folder, with the U-Net the workbench built (QGFD processors, learned
    alphas, transformer blocks) and every weight checked in (strict loading: nothing dropped)."""
    folder = Path(folder)
    config_path = folder / "unet" / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{str(folder)!r} is not a diffusers pipeline folder (no unet/config.json)")
    settings = json.loads(config_path.read_text()).get("qgfd_gen")
    scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
    if settings is None:  # a folder from elsewhere: plain diffusers
        return DDIMPipeline(unet=UNet2DModel.from_pretrained(folder, subfolder="unet"), scheduler=scheduler).to(device)
    if settings.get("format") != FORMAT:
        raise CheckpointError(f"{str(config_path)!r} was written as {settings.get('format')!r}; this version reads {FORMAT!r}")
    unet = build_unet(UNetConfig.coerce(settings["unet"]), QGFDConfig.coerce(settings["qgfd"]))
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    missing, unexpected = unet.load_state_dict(load_file(weights), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{str(weights)!r} does not fit the U-Net its config describes: missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]}")
    return DDIMPipeline(unet=unet.eval(), scheduler=scheduler).to(device)
