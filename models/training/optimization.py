"""Training pieces both diffusion modules use: the optimiser settings, AdamW with warm-up, an EMA copy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import torch
from torch import nn
from torch import Tensor
from torch.optim.swa_utils import AveragedModel

from qgfd_gen.config import coerce_config


@dataclass
class OptimizerConfig:
    """AdamW with a linear learning-rate warm-up, and the decay of the weights' moving average (EMA)."""

    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 5000
    ema_decay: float = 0.9999
    ema_warmup_power: Optional[float] = None  # EMA decay 1 - (1 + n)^-power after n updates, capped at ema_decay

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optimizer.lr={self.lr!r}; need a positive learning rate")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"optimizer.ema_decay={self.ema_decay!r}; need 0 <= ema_decay < 1")
        if self.ema_warmup_power is not None and not 0 < self.ema_warmup_power <= 1:
            raise ValueError(f"optimizer.ema_warmup_power={self.ema_warmup_power!r}; need a power in (0, 1] (2/3 for "
                             f"runs of a million steps, 3/4 for shorter ones), or null for a constant decay")
        if self.warmup_steps < 0:
            raise ValueError(f"optimizer.warmup_steps={self.warmup_steps!r}; need >= 0")
        self.betas = list(self.betas)

    @classmethod
    def coerce(cls, value: "OptimizerConfig | dict | None", **defaults) -> "OptimizerConfig":
        return coerce_config(cls, value, "optimizer", **defaults)


def ema_decay(updates: int, decay: float, warmup_power: Optional[float]) -> float:
    """The decay of update number `updates` + 1. Without warm-up, `decay`; with it, 1 - (1 + n)^-power capped
    at `decay` (diffusers' EMAModel warm-up with inv_gamma 1): at power 3/4, 0.999 after 10k updates and
    0.9999 after 215k, so an EMA of decay 0.9999 stops holding the random initial weights early in training."""
    if warmup_power is None:
        return decay
    return min(decay, 1.0 - (1.0 + updates) ** -warmup_power)


def exponential_moving_average(network: nn.Module, decay: float, warmup_power: Optional[float] = None) -> AveragedModel:
    """A frozen EMA copy of `network`; it lives in the module's state dict (with its update count, so a
    resumed run continues the warm-up where it stopped), so checkpoints keep it."""

    def average(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        weight = 1.0 - ema_decay(int(num_averaged), decay, warmup_power)
        torch._foreach_lerp_(averaged, current, weight)

    ema = AveragedModel(network, multi_avg_fn=average, use_buffers=True)
    ema.requires_grad_(False)
    return ema


def adamw_with_warmup(parameters: Iterable[nn.Parameter], config: OptimizerConfig) -> dict:
    """Lightning's optimiser dict: AdamW whose learning rate rises linearly over `warmup_steps` steps."""
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, betas=tuple(config.betas))
    warmup = max(1, config.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
