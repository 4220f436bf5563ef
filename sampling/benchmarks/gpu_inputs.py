"""The gpu suite's training inputs: each config's own data set where it is on the machine (its data module with
downloads off, molecule sets capped so that encoding stays within seconds), else random tensors of the config's
shapes, with the reason the set was not used. Nothing downloads."""

from __future__ import annotations

import copy
import importlib
import inspect
import time
from typing import Any, Optional

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from qgfd_gen.errors import QGFDError

from .molecules import random_molecules, set_uniform_statistics

INPUTS = ("each config's data set where it is on this machine (downloads off), else random tensors of its shapes; "
          "every train row's `inputs` says which")
RANDOM_INPUTS = "random tensors of the config's shapes (speed and memory do not depend on the values)"
MAX_MOLECULES = 10_000  # per split: a few hundred steps of batches; MOSES reads and encodes in about 25 s once


def random_inputs(model: L.LightningModule, batch: int, count: int) -> DataLoader:
    """`count` batches of random inputs shaped as the config's data: images in [-1, 1], or molecules of the
    vocabulary's largest size (bench_molecules.random_molecules), with a stand-in chain noise limit."""
    if getattr(model, "kind", "") == "images":
        unet = model.unet_config
        generator = torch.Generator().manual_seed(0)
        data = (torch.rand(batch * count, unet.in_channels, unet.sample_size, unet.sample_size, generator=generator) * 2 - 1,)
    else:
        set_uniform_statistics(model)
        data = random_molecules(model, batch * count)
    return DataLoader(TensorDataset(*data), batch_size=batch, shuffle=False)


def config_datamodule(config: dict[str, Any], batch: int, tiny: bool, data_dir: Optional[str],
                      model: L.LightningModule) -> L.LightningDataModule:
    """The config's data module as `lightning fit` would build it, with downloads off, the part's batch size,
    `data_dir` when given, molecule sets capped, and (tiny) images resized to the tiny model's size."""
    data = copy.deepcopy(config["data"])
    module, _, name = data["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    accepted = inspect.signature(cls).parameters
    args = {**(data.get("init_args") or {}), "batch_size": batch}
    if "download" in accepted:
        args["download"] = False
    if data_dir is not None and "data_dir" in accepted:  # the synthetic graphs are made, not read
        args["data_dir"] = data_dir
    if "max_molecules" in accepted:
        args["max_molecules"] = 64 if tiny else MAX_MOLECULES
    if tiny:
        args["num_workers"] = 0
        if "image_size" in accepted:
            args["image_size"] = model.unet_config.sample_size
    return cls(**args)


def training_inputs(config: dict[str, Any], model: L.LightningModule, batch: int, count: int, tiny: bool,
                    data_dir: Optional[str]) -> tuple[dict[str, Any], str, float]:
    """`trainer.fit` keyword arguments, what they are and the seconds spent preparing them: the config's data
    set when it is here, else `count` random batches, with the reason the set was not used."""
    start = time.perf_counter()
    try:
        datamodule = config_datamodule(config, batch, tiny, data_dir, model)
        datamodule.prepare_data()
        datamodule.setup("fit")
    except QGFDError as error:
        reason = str(error).strip().splitlines()[0]
        return ({"train_dataloaders": random_inputs(model, batch, count)}, f"{RANDOM_INPUTS}: {reason}",
                time.perf_counter() - start)
    where = getattr(datamodule, "path", None) or getattr(datamodule, "data_dir", None)
    source = f"from {str(where)!r}" if where is not None else "(made at setup)"
    return {"datamodule": datamodule}, f"data set: {type(datamodule).__name__} {source}", time.perf_counter() - start
