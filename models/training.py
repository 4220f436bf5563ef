"""Training pieces both diffusion modules use: an EMA copy of the network and AdamW with warm-up."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def exponential_moving_average(network: nn.Module, decay: float) -> AveragedModel:
    """A frozen EMA copy of `network`; it lives in the module's state dict, so checkpoints keep it."""
    if not 0 <= decay < 1:
        raise ValueError(f"ema_decay={decay!r}; need 0 <= ema_decay < 1")
    ema = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema


def adamw_with_warmup(parameters: Iterable[nn.Parameter], lr: float, weight_decay: float, warmup_steps: int,
                      betas: tuple[float, float] = (0.9, 0.999)) -> dict:
    """Lightning's optimiser dict: AdamW whose learning rate rises linearly over `warmup_steps` steps."""
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    warmup = max(1, warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
