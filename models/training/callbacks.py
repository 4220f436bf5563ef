"""Callbacks: what happens around training besides the optimisation itself."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from models.measures.grids import image_grid, write_graph_grid, write_image_grid, write_molecule_grid
from models.processes.samples import NonFiniteSamples

log = logging.getLogger(__name__)


class SampleGridCallback(L.Callback):
    """Every `every_n_epochs` epochs, sample a grid with the EMA weights, write it as PNG into the run
    folder (`<log_dir>/samples/epoch_XXXX.png`) and log it to TensorBoard when that is the logger. On a
    molecule model the grid is RDKit's (SMILES under each molecule), on a graph model generated graphs beside
    training graphs (`sampler` does not apply to either)."""

    def __init__(self, every_n_epochs: int = 10, num: int = 64, sampler: str = "ddim", steps: int = 50,
                 seed: int = 0, on_train_end: bool = True):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs={every_n_epochs!r}; need >= 1")
        self.every_n_epochs, self.num, self.sampler, self.steps, self.seed = every_n_epochs, num, sampler, steps, seed
        self.at_end = on_train_end
        self.last_written: Path | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        """The grid's settings checked against the model before training, not at the first grid."""
        try:
            if getattr(pl_module, "kind", "images") == "images":
                pl_module.check_sampling(self.num, self.sampler, self.steps)
            else:
                pl_module.check_sampling(self.num, self.steps)
        except ValueError as error:
            raise ValueError(f"SampleGridCallback: {error}") from None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.write_grid(trainer, pl_module, f"epoch_{trainer.current_epoch:04d}")

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        if self.at_end and not trainer.sanity_checking:
            self.write_grid(trainer, pl_module, "final")

    def write_grid(self, trainer: L.Trainer, pl_module, name: str) -> None:
        # every rank must ask: trainer.log_dir broadcasts rank zero's answer (a collective)
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "samples"
        if not trainer.is_global_zero:
            return
        if getattr(pl_module, "kind", "images") == "graphs":
            from models.measures.graph_statistics import is_valid

            graphs = pl_module.sample(self.num, steps=self.steps, seed=self.seed).graphs
            datamodule = getattr(trainer, "datamodule", None)
            training = datamodule.graphs("train")[:8] if hasattr(datamodule, "graphs") else []
            self.last_written = write_graph_grid(graphs, folder / f"{name}.png",
                                                 [is_valid(g, pl_module.benchmark) for g in graphs], training)
            return
        if getattr(pl_module, "kind", "images") == "molecules":
            molecules = pl_module.sample(self.num, steps=self.steps, seed=self.seed)
            self.last_written = write_molecule_grid(molecules.mols, folder / f"{name}.png")
            return
        try:
            result = pl_module.sample(self.num, sampler=self.sampler, steps=self.steps, seed=self.seed)
        except NonFiniteSamples as error:  # a diverging model: say so and let training (or its stop) go on
            log.warning("SampleGridCallback: no grid %s at step %d: %s", name, trainer.global_step, error)
            return
        path = write_image_grid(result.images, folder / f"{name}.png")
        self.last_written = path
        if isinstance(trainer.logger, TensorBoardLogger):
            trainer.logger.experiment.add_image("samples", image_grid(result.images), trainer.global_step)
