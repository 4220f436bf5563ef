"""`lightning predict`: samples written as `qgfd-sample` writes them.

`SampleWriter` (a Lightning prediction writer) says what to draw (how many, sampler, steps, seed, batch size)
and where to write it; the model's `predict_dataloader` hands out the first index of each batch and its
`predict_step` draws that batch exactly as `qgfd-sample` would (the same seed gives the same samples, on any
number of devices). At the end of the epoch every device's batches are gathered on rank zero, put back into
index order and written: images as `grid.png` and `samples.npz`, molecules as `molecules.png` and
`molecules.smi`. `lightning predict` adds a SampleWriter with these defaults when the config has none.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from models.measures.grids import write_image_grid, write_molecule_grid, write_npz, write_smiles


@dataclasses.dataclass
class PredictRequest:
    num: int
    batch_size: int
    options: dict  # the rest of the model's `sample` arguments: sampler, steps, seed

    def batch_starts(self) -> list[int]:
        return list(range(0, self.num, self.batch_size))


class SampleWriter(BasePredictionWriter):
    """num samples (sampler and steps as in qgfd-sample: steps None means 50 for images and every timestep for
    molecules, which ignore `sampler`) written into `out` (default `<default_root_dir>/predictions`)."""

    def __init__(self, num: int = 64, sampler: str = "ddim", steps: Optional[int] = None, seed: int = 0,
                 batch_size: int = 64, out: Optional[str] = None):
        super().__init__(write_interval="epoch")
        if num < 1 or batch_size < 1:
            raise ValueError(f"num={num!r}, batch_size={batch_size!r}; both need to be >= 1")
        self.num, self.sampler, self.steps, self.seed, self.batch_size, self.out = num, sampler, steps, seed, batch_size, out
        self.written: list[Path] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        options = {"steps": self.steps, "seed": self.seed}
        if pl_module.kind == "images":
            options.update(sampler=self.sampler, steps=self.steps or 50)
        pl_module.predict_request = PredictRequest(self.num, self.batch_size, options)

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any,
                           batch_indices: Any) -> None:
        batches = _flat(predictions)  # (first index, result) per batch
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            shares = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(shares, batches)
            batches = [item for share in shares for item in share]
        if not trainer.is_global_zero:
            return
        ordered = dict(sorted({start: result for start, result in batches}.items()))  # padding repeats a batch
        folder = Path(self.out or Path(trainer.default_root_dir) / "predictions")
        results = list(ordered.values())
        if pl_module.kind == "images":
            images = torch.cat([r.images for r in results])
            self.written = [write_image_grid(images, folder / "grid.png"), write_npz(images, folder / "samples.npz")]
        else:
            mols, smiles = [m for r in results for m in r.mols], [s for r in results for s in r.smiles]
            self.written = [write_molecule_grid(mols[:64], folder / "molecules.png"), write_smiles(smiles, folder / "molecules.smi")]
        print(f"wrote {', '.join(str(p) for p in self.written)}: {sum(len(r.evaluations) for r in results)} samples")


def _flat(predictions: Any) -> list:
    """Lightning gives one list per predict dataloader, or the list itself with one dataloader."""
    if predictions and isinstance(predictions[0], list):
        return [item for group in predictions for item in group]
    return list(predictions)
