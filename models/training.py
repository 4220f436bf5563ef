"""Training pieces both diffusion modules use: the optimiser settings, AdamW with warm-up, an EMA copy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from qgfd_gen.config import coerce_config


@dataclass
class OptimizerConfig:
    """AdamW with a linear learning-rate warm-up, and the decay of the weights' moving average (EMA)."""

    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 5000
    ema_decay: float = 0.9999

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optimizer.lr={self.lr!r}; need a positive learning rate")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"optimizer.ema_decay={self.ema_decay!r}; need 0 <= ema_decay < 1")
        if self.warmup_steps < 0:
            raise ValueError(f"optimizer.warmup_steps={self.warmup_steps!r}; need >= 0")
        self.betas = list(self.betas)

    @classmethod
    def coerce(cls, value: "OptimizerConfig | dict | None", **defaults) -> "OptimizerConfig":
        return coerce_config(cls, value, "optimizer", **defaults)


def exponential_moving_average(network: nn.Module, decay: float) -> AveragedModel:
    """A frozen EMA copy of `network`; it lives in the module's state dict, so checkpoints keep it."""
    ema = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema


def adamw_with_warmup(parameters: Iterable[nn.Parameter], config: OptimizerConfig) -> dict:
    """Lightning's optimiser dict: AdamW whose learning rate rises linearly over `warmup_steps` steps."""
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, betas=tuple(config.betas))
    warmup = max(1, config.warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
