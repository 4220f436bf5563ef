"""Whether a deep denoiser collapses its node states, layer by layer, as it trains: on one fixed batch (the first
training batch, noised at timesteps spread over the chain with fixed noise), the consensus distance, effective
rank and relative Dirichlet energy (models.measures.collapse) of the states after the embedding and after each
layer, at initialisation (before the first update), every `every_n_steps` optimiser steps, and at the end.

Why a fixed batch: the measures move with the graphs and timesteps drawn, so only the same inputs show what
training did to the layers. The probe runs under `no_grad` in eval mode and restores the random state, so turning
the callback on changes no loss (tested bitwise).

Writes `collapse.json` (every probe: step and each measure per layer) and `collapse.png` (each measure against the
layer index, at initialisation and at the end) beside the logs, and logs the last layer's measures at each probe.
The module must offer `collapse_states(batch, seed)`: the graph generators give the node states after the embedding
and after each layer, over the noisy graph; the image model the token states entering its first attention layer and
leaving each one, over each resolution's 4-neighbour pixel grid (`attention_states`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch

from models.measures.collapse import MEASURES, collapse_measures
from qgfd_gen.io import atomic_path, write_json

from .diagnostics import attention_layers

SUMMARY_FILE = "collapse.json"
PLOT_FILE = "collapse.png"
LABELS = {"consensus_distance": "distance to consensus ||X - 1 mean^T|| / ||X||",
          "effective_rank": "effective rank", "dirichlet_energy": "Dirichlet energy / ||X||^2"}


class CollapseMonitor(L.Callback):
    """Per-layer collapse measures on a fixed batch (see the module docstring).

    Args:
        every_n_steps: probe every this many optimiser steps (besides initialisation and the end).
        graphs: how many graphs of the first training batch make the fixed batch.
        seed: the noise of the fixed batch.
    """

    def __init__(self, every_n_steps: int = 50, graphs: int = 16, seed: int = 0):
        for name, value in (("every_n_steps", every_n_steps), ("graphs", graphs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}; need a positive integer")
        self.every_n_steps, self.graphs, self.seed = every_n_steps, graphs, seed
        self.batch: Optional[tuple[torch.Tensor, ...]] = None
        self.probes: list[dict[str, Any]] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        if not callable(getattr(pl_module, "collapse_states", None)):
            raise TypeError(f"CollapseMonitor measures states layer by layer; {type(pl_module).__name__} has no "
                            f"collapse_states(batch, seed) (the graph generators and the image model have)")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.batch is None:  # the fixed batch: the first this fit sees (kept in checkpoints for a resume)
            self.batch = tuple(part[: self.graphs].detach().clone() for part in batch)
        step = trainer.global_step
        if step % self.every_n_steps == 0 and not any(p["step"] == step for p in self.probes):
            self.probe(trainer, pl_module, step)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.batch is not None and not any(p["step"] == trainer.global_step for p in self.probes):
            self.probe(trainer, pl_module, trainer.global_step)
        self.write(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.write(trainer)

    def probe(self, trainer, pl_module, step: int) -> None:
        training = pl_module.training
        pl_module.eval()
        try:
            batch = tuple(part.to(pl_module.device) for part in self.batch)
            states, mask, adjacency = pl_module.collapse_states(batch, self.seed)
        finally:
            pl_module.train(training)
        found = collapse_measures(states, adjacency, mask)
        self.probes.append({"step": step, **found})
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics({f"collapse/{name}": values[-1] for name, values in found.items()}, step=step)

    def summary(self) -> dict[str, Any]:
        """Every probe, and the last layer's measures at initialisation and at the end (None before a probe)."""
        first, last = (self.probes[0], self.probes[-1]) if self.probes else (None, None)
        ends = {}
        for name in MEASURES:
            ends[f"{name}_init"] = first[name][-1] if first else None
            ends[f"{name}_end"] = last[name][-1] if last else None
        return {"layers": len(first["consensus_distance"]) - 1 if first else None, **ends, "probes": self.probes}

    def write(self, trainer) -> None:
        if not trainer.is_global_zero or not self.probes:
            return
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        write_json(folder / SUMMARY_FILE, self.summary())
        plot_collapse(folder / PLOT_FILE, self.probes)

    def state_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "probes": self.probes}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batch = state_dict.get("batch")
        self.probes = list(state_dict.get("probes", []))


def grid_adjacency(height: int, width: int, device: torch.device) -> torch.Tensor:
    """[H W, H W] 4-neighbour adjacency of a pixel grid, row-major."""
    index = torch.arange(height * width, device=device).reshape(height, width)
    adjacency = torch.zeros(height * width, height * width, device=device)
    for a, b in ((index[:, :-1], index[:, 1:]), (index[:-1], index[1:])):
        adjacency[a.reshape(-1), b.reshape(-1)] = 1
        adjacency[b.reshape(-1), a.reshape(-1)] = 1
    return adjacency


def _tokens(hidden: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """[B, N, C] tokens and their grid (H, W) from [B, C, H, W] maps or square [B, N, C] tokens."""
    if hidden.dim() == 4:
        b, c, h, w = hidden.shape
        return hidden.reshape(b, c, h * w).transpose(1, 2), h, w
    side = int(round(hidden.shape[1] ** 0.5))
    return hidden, side, hidden.shape[1] // side


def attention_states(network: torch.nn.Module, run) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Runs `run()` with hooks on `network`'s attention layers; the token states entering the first and leaving
    each, and each one's pixel-grid adjacency."""
    states: list[torch.Tensor] = []
    grids: list[torch.Tensor] = []

    def keep(hidden: torch.Tensor) -> None:
        tokens, h, w = _tokens(hidden.detach().float())
        states.append(tokens)
        grids.append(grid_adjacency(h, w, tokens.device).expand(tokens.shape[0], -1, -1))

    layers = list(attention_layers(network).values())
    handles = [layer.register_forward_hook(lambda module, args, output: keep(output[0] if isinstance(output, tuple)
                                                                              else output)) for layer in layers]
    if layers:
        handles.append(layers[0].register_forward_pre_hook(
            lambda module, args, kwargs: keep(args[0] if args else kwargs["hidden_states"]), with_kwargs=True))
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return states, grids  # the pre-hook fires before the first layer runs: its input comes first


def plot_collapse(path: Path, probes: list[dict[str, Any]]) -> Path:
    """Each measure against the layer index (0: the embedding), at the first and the last probe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(MEASURES), figsize=(4 * len(MEASURES), 3.2))
    shown = [probes[0]] + ([probes[-1]] if len(probes) > 1 else [])
    for axis, name in zip(axes, MEASURES):
        for probe, style in zip(shown, ("--", "-")):
            axis.plot(range(len(probe[name])), probe[name], style, marker=".", label=f"step {probe['step']}")
        axis.set_xlabel("layer (0: embedding)")
        axis.set_title(LABELS[name], fontsize=9)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
    return path
