"""What both diffusion LightningModules share: the trained network and its EMA, the optimiser, plain-data
hyper-parameters, and the record that tells a checkpoint's kind without guessing from its keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from qgfd_gen.attention import mean_qgfd_iterations, qgfd_layers
from qgfd_gen.checkpoints import RECORD_KEY, check_file, check_kind, make_record, record_of
from qgfd_gen.errors import TrainingDiverged, UsageError
from qgfd_gen.provenance import code_version
from qgfd_gen.seeds import derived_seed, run_seed, seeded_run

from .optimization import OptimizerConfig, adamw_with_warmup, exponential_moving_average


class DiffusionModule(L.LightningModule):
    """Subclasses set `kind` ("images" / "molecules") and call `build_training(network, optimizer)`."""

    kind: str = ""

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs):
        """Lightning's loading, after a cheap safe look (memory-mapped, plain data only) at the checkpoint's
        record: a file of the other kind, an old format or an unsafe file is refused before anything is built."""
        if isinstance(checkpoint_path, (str, Path)):
            check_file(checkpoint_path, cls.kind)
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def build_training(self, network: nn.Module, optimizer: OptimizerConfig) -> None:
        self.optimizer_config = optimizer
        self.ema = exponential_moving_average(network, optimizer.ema_decay, optimizer.ema_warmup_power)

    def plain_hyperparameters(self, **configs: Any) -> None:
        """Store config dataclasses in hparams as plain mappings: checkpoints then hold tensors and plain
        data only (they load with weights_only=True) and YAML hparams read like the configs."""
        for name, value in configs.items():
            self.hparams[name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value

    # ------------------------------------------------------------------ lightning predict
    def predict_dataloader(self) -> DataLoader:
        """The first sample index of each batch that `lightning predict` draws (see models.predict)."""
        request = getattr(self, "predict_request", None)
        if request is None:
            raise UsageError("lightning predict draws samples through models.SampleWriter: add it to "
                             "trainer.callbacks (`lightning predict` adds one when the config has none)")
        return DataLoader(request.batch_starts(), batch_size=None, shuffle=False)

    def predict_step(self, batch_start: Any, batch_idx: int) -> tuple[int, Any]:
        request, start = self.predict_request, int(batch_start)
        return start, self.sample(request.num, batch_size=request.batch_size, batches=[start], **request.options)

    @property
    def network(self) -> nn.Module:
        """The network being trained (the EMA copy is `self.ema.module`)."""
        raise NotImplementedError

    def sampling_network(self, use_ema: bool) -> nn.Module:
        return self.ema.module if use_ema else self.network

    def counting_network(self, use_ema: bool) -> tuple[Callable[..., Any], list[float]]:
        """The sampling network as a function, and a list that collects QGFD's mean iterations of each call."""
        net, iterations = self.sampling_network(use_ema), []
        layers = qgfd_layers(net)  # found once: walking the modules at every call would cost a few per cent

        def call(*inputs: Any) -> Any:
            output = net(*inputs)
            used = mean_qgfd_iterations(layers) if layers else None
            if used is not None:
                iterations.append(used)
            return output

        return call, iterations

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The EMA follows optimiser steps, not batches: with gradient accumulation over k batches it updates
        once per k."""
        super().optimizer_step(*args, **kwargs)
        self.ema.update_parameters(self.network)

    def configure_optimizers(self) -> dict:
        return adamw_with_warmup(self.network.parameters(), self.optimizer_config)

    def on_fit_start(self) -> None:
        code_version()  # read (and cached) as training starts, not at the first checkpoint, when the tree may differ

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Records the kind; refuses to write non-finite weights (which would replace a good last.ckpt)."""
        bad = [name for name, p in [*self.network.named_parameters(), *self.ema.module.named_parameters()]
               if not bool(torch.isfinite(p).all())]
        if bad:
            step = self._trainer.global_step if self._trainer is not None else "?"
            raise TrainingDiverged(f"training diverged: at step {step} {len(bad)} parameter tensors are non-finite "
                                   f"(first {bad[0]!r}); not saving them, so the last checkpoint stays the last "
                                   f"finite one. Lower the learning rate (model.init_args.optimizer.lr)")
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        checkpoint[RECORD_KEY] = make_record(self.kind, datamodule)
        if self._trainer is None or self._trainer.world_size == 1:  # (other ranks' generators are not rank 0's)
            checkpoint[RNG_KEY] = getattr(self, "_training_random_state", None) or random_state(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_kind(record_of(checkpoint, "the checkpoint"), self.kind, "the checkpoint")
        self._resumed_random_state = checkpoint.get(RNG_KEY)

    def on_train_start(self) -> None:
        """The training stream, set before the first batch is drawn (flips included). A resumed fit (ckpt_path)
        goes on with the random state its checkpoint saved, so its timesteps, noise, flips and dropout are those
        of the uninterrupted run. A fresh fit seeded by `seed_everything` restarts the generator on a stream
        derived from that seed (not the seed's own, which drew the initial weights): initialisation draws a
        different amount for each architecture, so without the restart the arms of one seed would train on
        different draws, and their differences would be paired only in name. A checkpoint loaded to start a
        new fit, without ckpt_path, leaves the new run's seed alone."""
        state, self._resumed_random_state = getattr(self, "_resumed_random_state", None), None
        if self.trainer.world_size != 1:  # (other ranks' generators are not rank 0's)
            return
        if self.trainer.ckpt_path is not None:
            if state is not None:
                restore_random_state(state, self.device)
        elif seeded_run():
            torch.manual_seed(derived_seed(run_seed(), "training"))

    def on_validation_start(self) -> None:
        """Sets the training stream's random state aside for the length of a validation, which puts it back at
        the end: validating or not (sampling, scoring, FCD's ChemNet built and initialised) leaves the noise of
        the training steps unchanged, and a checkpoint saved during validation records the training stream."""
        self._training_random_state = random_state(self.device)

    def on_validation_end(self) -> None:
        state, self._training_random_state = getattr(self, "_training_random_state", None), None
        if state is not None:
            restore_random_state(state, self.device)


RNG_KEY = "qgfd_random_state"


def random_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The global generators the training step draws from (tensors only, so checkpoints still load with
    weights_only=True): the CPU one, and the model's GPU's."""
    state = {"cpu": torch.random.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_random_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.random.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
