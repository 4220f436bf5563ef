"""What a training run records besides its loss, so that runs can be compared on how they trained:
gradient norms (total and per attention layer), non-finite steps skipped, each layer's QGFD alpha, and how
far QGFD's iteration has settled (the residual max|H_t - H_{t-1}| of every iteration) at each validation."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from torch import Tensor, nn

from qgfd_gen.attention import named_qgfd_layers, trace_qgfd
from qgfd_gen.errors import TrainingDiverged
from qgfd_gen.io import write_json
from qgfd_gen.memory import MemoryTracker

RESIDUALS_FILE = "qgfd_residuals.json"


def attention_layers(network: nn.Module) -> dict[str, nn.Module]:
    """The outermost attention modules of a network by name (vanilla or QGFD: diffusers' `Attention`, the
    workbench's `QGFDAttention`), so runs with and without QGFD report the same layers."""
    found: dict[str, nn.Module] = {}
    for name, module in network.named_modules():
        if type(module).__name__.endswith("Attention") and not any(name.startswith(f"{n}.") for n in found):
            found[name] = module
    return found


def gradient_norm(parameters) -> Tensor:
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


class TrainingDiagnostics(L.Callback):
    """Logs `grad_norm/total` and `grad_norm/<layer>` (before clipping), `qgfd_alpha/<layer>`,
    `nonfinite/losses` and `nonfinite/skipped_steps`, every `log_every_n_steps` optimiser steps; skips an
    optimiser step whose gradients are not finite (they are dropped, the weights stay); at the end of each
    validation logs `qgfd_residual/<layer>` (the last iteration's residual) and appends every iteration's
    residual, from each layer's first call on the first validation batch, to `<log_dir>/qgfd_residuals.json`.

    After `stop_after_nonfinite` consecutive steps with a non-finite loss or gradient, training stops with
    `TrainingDiverged` (one line from the `lightning` command, exit status 2) naming the step, the last finite loss
    and the learning rate; nothing is saved at that point, so the last checkpoint stays the last finite one."""

    def __init__(self, log_every_n_steps: Optional[int] = None, skip_nonfinite: bool = True, memory_batch: int = 2,
                 stop_after_nonfinite: Optional[int] = 20):
        if stop_after_nonfinite is not None and (isinstance(stop_after_nonfinite, bool) or stop_after_nonfinite < 1):
            raise ValueError(f"stop_after_nonfinite={stop_after_nonfinite!r}; need a positive integer (or null: never stop)")
        self.log_every_n_steps, self.skip_nonfinite, self.memory_batch = log_every_n_steps, skip_nonfinite, memory_batch
        self.stop_after_nonfinite = stop_after_nonfinite
        self.consecutive_nonfinite = 0
        self.last_finite: Optional[tuple[int, float]] = None  # (step, loss) of the last finite training step
        self._step_nonfinite = False
        self.nonfinite_losses = 0
        self.skipped_steps = 0
        self.residual_records: list[dict[str, Any]] = []
        self._traces: dict[str, list[Tensor]] = {}
        self._tracing: Any = None
        self.step_seconds: list[float] = []  # wall time of each training batch of this fit
        self.step_memory_mb: Optional[float] = None
        self._batch_start = 0.0
        self._batches = 0
        self._memory: Optional[MemoryTracker] = None

    # ------------------------------------------------------------------ cost: time per step, step memory
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":  # before a checkpoint's state is restored, whatever the strategy: a resumed fit gets it back
            self.step_memory_mb = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.step_seconds, self._batches = [], 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        """The `memory_batch`-th batch of a fit is counted tensor by tensor (and left out of the timing):
        the peak of what one training step creates (activations, gradients, temporaries), the same
        measure on every device and unaffected by what else the process holds. A fit resumed from a checkpoint
        saved after that batch keeps its measure instead of counting another batch: graph batches are trimmed to
        their largest graph, so a later batch would give another figure for the same run."""
        if self._batches == self.memory_batch and self.step_memory_mb is None:
            self._memory = MemoryTracker()
            self._memory.__enter__()
        self._batch_start = time.perf_counter()

    def seconds_per_step(self) -> Optional[float]:
        """Median wall time of a training batch, the first five (warm-up) left out when there are more."""
        times = self.step_seconds[5:] if len(self.step_seconds) > 10 else self.step_seconds
        return statistics.median(times) if times else None

    # ------------------------------------------------------------------ training
    def _due(self, trainer: L.Trainer) -> bool:
        every = self.log_every_n_steps or trainer.log_every_n_steps or 1
        return trainer.global_step % every == 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._batches += 1
        if self._memory is not None:
            self._memory.__exit__(None, None, None)
            self.step_memory_mb, self._memory = self._memory.peak_bytes / 2**20, None
        else:
            self.step_seconds.append(time.perf_counter() - self._batch_start)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        finite_loss = not (isinstance(loss, Tensor) and not bool(torch.isfinite(loss.detach()).all()))
        if not finite_loss:
            self.nonfinite_losses += 1
        if finite_loss and not self._step_nonfinite:
            self.consecutive_nonfinite = 0
            if isinstance(loss, Tensor):
                self.last_finite = (trainer.global_step, float(loss.detach()))
        else:
            self.consecutive_nonfinite += 1
        self._step_nonfinite = False
        if self.stop_after_nonfinite and self.consecutive_nonfinite >= self.stop_after_nonfinite:
            raise TrainingDiverged(self.divergence_message(trainer))

    def divergence_message(self, trainer) -> str:
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        last = (f"the last finite loss was {self.last_finite[1]:.4g} at step {self.last_finite[0]}"
                if self.last_finite else "no step of this run had a finite loss")
        return (f"training diverged: {self.consecutive_nonfinite} consecutive steps with a non-finite loss or gradient, "
                f"up to step {trainer.global_step}; {last}; learning rate {lr:g}. Stopped without saving: the last "
                f"checkpoint is the last finite one. Lower the learning rate (model.init_args.optimizer.lr) or raise "
                f"TrainingDiagnostics' stop_after_nonfinite")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        network = pl_module.network
        total = gradient_norm(network.parameters())
        self._step_nonfinite = not bool(torch.isfinite(total))
        if self.skip_nonfinite and self._step_nonfinite:
            self.skipped_steps += 1
            optimizer.zero_grad(set_to_none=True)  # AdamW leaves parameters without gradients untouched
        if not self._due(trainer):
            return
        values = {"grad_norm/total": total, "nonfinite/losses": float(self.nonfinite_losses),
                  "nonfinite/skipped_steps": float(self.skipped_steps)}
        for name, layer in attention_layers(network).items():
            values[f"grad_norm/{name}"] = gradient_norm(layer.parameters())
        for name, layer in named_qgfd_layers(network).items():
            alpha = layer.alpha()
            values[f"qgfd_alpha/{name}"] = float(alpha.detach().mean() if isinstance(alpha, Tensor) else alpha)
        pl_module.log_dict(values, on_step=True, on_epoch=False)

    # ------------------------------------------------------------------ validation: QGFD residuals
    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking or batch_idx != 0 or dataloader_idx != 0:
            return
        self._tracing = trace_qgfd(pl_module)
        self._traces = self._tracing.__enter__()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._tracing is None:
            return
        tracing, self._tracing = self._tracing, None
        traces = {name: [float(r) for r in calls[0]] for name, calls in self._traces.items() if calls and len(calls[0])}
        tracing.__exit__(None, None, None)
        if not traces:
            return
        pl_module.log_dict({f"qgfd_residual/{name}": trace[-1] for name, trace in traces.items()},
                           on_step=False, on_epoch=True)
        self.residual_records.append({"step": trainer.global_step, "layers": traces})
        if trainer.is_global_zero and trainer.log_dir:
            write_json(Path(trainer.log_dir) / RESIDUALS_FILE, self.residual_records)

    # ------------------------------------------------------------------ resumable counters
    def state_dict(self) -> dict[str, Any]:
        return {"nonfinite_losses": self.nonfinite_losses, "skipped_steps": self.skipped_steps,
                "residual_records": self.residual_records, "step_memory_mb": self.step_memory_mb}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.nonfinite_losses = int(state_dict.get("nonfinite_losses", 0))
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))
        self.residual_records = list(state_dict.get("residual_records", []))
        self.step_memory_mb = state_dict.get("step_memory_mb")
