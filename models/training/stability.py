"""How stably a run trains, every step: the gradient norm before clipping, gradient and loss spikes, clipped and
non-finite steps; and, every `every_n_steps` steps, what each attention layer does with its weights (the entropy
of p0 and of QGFD's effective p_T, top-5 mass, the largest logit) on a few query rows of the training batch.

Spikes are counted against a running median of the last `window` finite values (at least `min_history` of them):
a gradient spike is a gradient norm above `grad_spike_factor` (5) times that median, a loss spike a loss above
`loss_spike_factor` (3) times it. Why a running median: the loss and gradient norm of a diffusion model drift over
training and jump from batch to batch with the timesteps drawn, so a fixed threshold would count the trend and a
mean would be dragged by the spikes themselves; a ratio to the median of the recent past counts only sudden jumps.

Everything goes to the logger every step (`metrics.csv` with the CSV logger), whatever `log_every_n_steps` says,
and a summary to `stability.json` beside the logs at the end of training or when it stops with an error (a
diverged run included). The measurements read the batch under `no_grad` and draw no random numbers, so turning
the callback on changes no loss (tested bitwise).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from torch import Tensor, nn

from qgfd_gen.attention import QGFDAttention, make_transition
from qgfd_gen.attention_statistics import attention_statistics
from qgfd_gen.io import write_json

from .diagnostics import attention_layers, gradient_norm

SUMMARY_FILE = "stability.json"
STATISTICS = ("entropy_p0", "entropy_pT", "top5_pT", "max_logit")


def layer_statistics(module: nn.Module, args: tuple, kwargs: dict, rows: int) -> Optional[dict[str, float]]:
    """The attention statistics of one layer's call, from the inputs its forward was given (None for a
    cross-attention call, which has no graph over its keys)."""
    if isinstance(module, QGFDAttention):
        x = args[0] if args else kwargs["x"]
        q, k, _ = module.project(x)
        transition = kwargs.get("transition") or (None if module.config.transition == "adjacency" else
                                                  make_transition(module.config, kwargs.get("grid_shape")))
        alpha = module.alpha()
        scale = kwargs.get("alpha_scale")
        if scale is not None:
            alpha = torch.as_tensor(alpha, dtype=q.dtype).reshape(1, 1) * scale.to(q.dtype)[:, None]
        return attention_statistics(q, k, transition, alpha, module.config.iterations,
                                    kwargs.get("key_padding_mask"), kwargs.get("attn_bias"), rows=rows)
    from qgfd_gen.processor import QGFDAttnProcessor, project_qkv

    if kwargs.get("encoder_hidden_states") is not None or (len(args) > 1 and args[1] is not None):
        return None
    hidden = args[0] if args else kwargs["hidden_states"]
    q, k, _, spatial = project_qkv(module, hidden, kwargs.get("temb"))
    processor = getattr(module, "processor", None)
    if isinstance(processor, QGFDAttnProcessor):
        transition = make_transition(processor.config, processor._grid_shape(q.shape[2], spatial))
        return attention_statistics(q, k, transition, processor.alpha(), processor.config.iterations, rows=rows)
    return attention_statistics(q, k, None, rows=rows)


class StabilityMonitor(L.Callback):
    """Per-step stability counters and periodic attention statistics (see the module docstring).

    Args:
        every_n_steps: attention statistics every this many optimiser steps (and at step 0); 0 turns them off.
        rows: query rows measured per sample (two samples of the batch).
        window: the running median's length.
        min_history: finite values needed before spikes are counted.
        grad_spike_factor: a gradient norm above this times the running median is a spike.
        loss_spike_factor: a loss above this times the running median is a spike.
    """

    def __init__(self, every_n_steps: int = 25, rows: int = 8, window: int = 50, min_history: int = 10,
                 grad_spike_factor: float = 5.0, loss_spike_factor: float = 3.0):
        for name, value in (("every_n_steps", every_n_steps), ("rows", rows), ("window", window),
                            ("min_history", min_history)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "every_n_steps" else 1):
                raise ValueError(f"{name}={value!r}; need a {'non-negative' if name == 'every_n_steps' else 'positive'} integer")
        for name, value in (("grad_spike_factor", grad_spike_factor), ("loss_spike_factor", loss_spike_factor)):
            if not value > 1:
                raise ValueError(f"{name}={value!r}; need a factor above 1")
        self.every_n_steps, self.rows, self.window, self.min_history = every_n_steps, rows, window, min_history
        self.grad_spike_factor, self.loss_spike_factor = grad_spike_factor, loss_spike_factor
        self.counts = {"grad_spikes": 0, "loss_spikes": 0, "clipped_steps": 0, "nonfinite_steps": 0, "monitored_steps": 0}
        self.grad_history: deque = deque(maxlen=window)
        self.loss_history: deque = deque(maxlen=window)
        self.first_losses: list[float] = []
        self.last_losses: deque = deque(maxlen=10)
        self.extremes: dict[str, Optional[float]] = {"max_grad_norm": None, "min_entropy_pT": None,
                                                     "min_entropy_p0": None, "max_logit": None}
        self.stopped_by: Optional[str] = None
        self._grad_norm: Optional[float] = None
        self._hooks: list[Any] = []
        self._layer_values: dict[str, dict[str, float]] = {}

    # ------------------------------------------------------------------ every step
    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self._grad_norm = float(gradient_norm(pl_module.network.parameters()))  # before clipping: Lightning clips after

    def _spike(self, history: deque, value: float, factor: float) -> bool:
        spike = len(history) >= self.min_history and value > factor * statistics.median(history)
        history.append(value)
        return spike

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss_tensor = outputs.get("loss") if isinstance(outputs, dict) else outputs
        loss = float(loss_tensor.detach()) if isinstance(loss_tensor, Tensor) else float("nan")
        grad = self._grad_norm if self._grad_norm is not None else float("nan")
        self._grad_norm = None
        self.counts["monitored_steps"] += 1
        if not (math.isfinite(loss) and math.isfinite(grad)):
            self.counts["nonfinite_steps"] += 1
        else:
            self.counts["grad_spikes"] += self._spike(self.grad_history, grad, self.grad_spike_factor)
            self.counts["loss_spikes"] += self._spike(self.loss_history, loss, self.loss_spike_factor)
            clip = trainer.gradient_clip_val
            self.counts["clipped_steps"] += bool(clip) and grad > clip
            self._extreme("max_grad_norm", grad, max)
            if not self.first_losses:  # the loss of the model as initialised (no update has acted yet)
                self.first_losses.append(loss)
            self.last_losses.append(loss)
        values = {"stability/grad_norm": grad, "stability/loss": loss,
                  **{f"stability/{name}": float(count) for name, count in self.counts.items() if name != "monitored_steps"}}
        values.update(self._close_probes())
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics(values, step=trainer.global_step - 1)

    def _extreme(self, name: str, value: float, pick) -> None:
        current = self.extremes[name]
        self.extremes[name] = value if current is None else pick(current, value)

    # ------------------------------------------------------------------ attention statistics
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if not self.every_n_steps or trainer.global_step % self.every_n_steps:
            return
        self._layer_values = {}
        for name, layer in attention_layers(pl_module.network).items():
            def hook(module, args, kwargs, name=name):
                if name not in self._layer_values:  # a layer's first call of the step
                    with torch.no_grad():
                        found = layer_statistics(module, args, kwargs, self.rows)
                    if found is not None:
                        self._layer_values[name] = found
            self._hooks.append(layer.register_forward_pre_hook(hook, with_kwargs=True))

    def _close_probes(self) -> dict[str, float]:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if not self._layer_values:
            return {}
        values = {f"attn/{layer}/{stat}": found[stat] for layer, found in self._layer_values.items() for stat in STATISTICS}
        layers = list(self._layer_values.values())
        summary = {"attn/min_entropy_pT": min(v["entropy_pT"] for v in layers),
                   "attn/min_entropy_p0": min(v["entropy_p0"] for v in layers),
                   "attn/mean_top5_pT": sum(v["top5_pT"] for v in layers) / len(layers),
                   "attn/max_logit": max(v["max_logit"] for v in layers)}
        self._extreme("min_entropy_pT", summary["attn/min_entropy_pT"], min)
        self._extreme("min_entropy_p0", summary["attn/min_entropy_p0"], min)
        self._extreme("max_logit", summary["attn/max_logit"], max)
        self._layer_values = {}
        return {**values, **summary}

    # ------------------------------------------------------------------ the summary
    def summary(self) -> dict[str, Any]:
        """What a study row keeps of the run: counts, extremes, the losses at the start and the end."""
        mean = (lambda values: sum(values) / len(values) if values else None)  # noqa: E731
        initial, final = mean(self.first_losses), mean(list(self.last_losses))
        return {**self.counts, **self.extremes, "initial_loss": initial, "final_loss_last10": final,
                "stopped_by": self.stopped_by}

    def _write_summary(self, trainer) -> None:
        if not trainer.is_global_zero:
            return
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        write_json(folder / SUMMARY_FILE, self.summary())

    def on_train_end(self, trainer, pl_module) -> None:
        self._write_summary(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._close_probes()
        self.stopped_by = type(exception).__name__
        self._write_summary(trainer)

    # ------------------------------------------------------------------ resumable state
    def state_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "grad_history": list(self.grad_history),
                "loss_history": list(self.loss_history), "first_losses": list(self.first_losses),
                "last_losses": list(self.last_losses), "extremes": dict(self.extremes)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.counts.update(state_dict.get("counts", {}))
        self.grad_history.extend(state_dict.get("grad_history", []))
        self.loss_history.extend(state_dict.get("loss_history", []))
        self.first_losses = list(state_dict.get("first_losses", []))
        self.last_losses.extend(state_dict.get("last_losses", []))
        self.extremes.update(state_dict.get("extremes", {}))
