"""Negative log-likelihood in bits per dimension from the DDPM variational bound (Ho et al. 2020, eq. 5):

    L = KL(q(x_T|x_0) || N(0, I)) + sum_{t=2..T} KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t)) - log p(x_0|x_1)

with p's variance fixed to the posterior variance (beta_tilde; beta_tilde_2 at t = 1) and a
discretized Gaussian decoder over 256 levels of [-1, 1]. `timesteps=K` estimates the middle sum from
K evenly spread timesteps, scaled by (T - 1) / K (an estimate; K = T - 1 is the exact bound).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor


def _normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log p(x) per element for x on the 256-level grid of [-1, 1] (outer bins reach to +-infinity)."""
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _normal_cdf(inv_std * (centred + 1.0 / 255))
    cdf_minus = _normal_cdf(inv_std * (centred - 1.0 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_minus = torch.log((1.0 - cdf_minus).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, log_delta))


@torch.no_grad()
def nll_bits_per_dim(model, images: Tensor, timesteps: Optional[int] = None, seed: int = 0, use_ema: bool = True) -> Tensor:
    """Bits per dimension of each image [B, C, H, W] in [-1, 1] under an ImageDiffusion model."""
    model.eval()
    device = model.device
    x0 = images.to(device).double()
    b = x0.shape[0]
    dims = x0[0].numel()
    abar = model.alphas_cumprod.double().to(device)  # abar[i] is DDPM's abar_{i+1}
    total_steps = abar.shape[0]
    abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype, device=device), abar[:-1]])
    betas = 1 - abar / abar_prev
    post_var = betas * (1 - abar_prev) / (1 - abar)
    post_var_clipped = torch.cat([post_var[1:2], post_var[1:]])
    coef_x0 = betas * abar_prev.sqrt() / (1 - abar)
    coef_xt = (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar)
    generator = torch.Generator().manual_seed(seed)

    def predicted_mean(x_t: Tensor, index: int) -> Tensor:
        t = torch.full((b,), index, device=device, dtype=torch.long)
        output = model(x_t.float(), t, use_ema=use_ema).double()
        a = abar[index]
        if model.hparams.prediction_type == "epsilon":
            x0_pred = (x_t - (1 - a).sqrt() * output) / a.sqrt()
        else:
            x0_pred = a.sqrt() * x_t - (1 - a).sqrt() * output
        return coef_x0[index] * x0_pred + coef_xt[index] * x_t

    def noised(index: int) -> Tensor:
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64).to(device)
        return abar[index].sqrt() * x0 + (1 - abar[index]).sqrt() * noise

    # prior term: KL(N(sqrt(abar_T) x0, 1 - abar_T) || N(0, 1))
    mean_t, var_t = abar[-1].sqrt() * x0, 1 - abar[-1]
    prior = 0.5 * (-1.0 - torch.log(var_t) + var_t + mean_t**2)
    total = prior.flatten(1).sum(1)

    middle = list(range(1, total_steps))  # indices of t = 2..T
    if timesteps is not None:
        if not 1 <= timesteps <= len(middle):
            raise ValueError(f"timesteps={timesteps!r}; need 1..{len(middle)} (or None for all)")
        middle = torch.linspace(1, total_steps - 1, timesteps).round().long().unique().tolist()
    scale = (total_steps - 1) / len(middle)
    for index in middle:
        x_t = noised(index)
        true_mean = coef_x0[index] * x0 + coef_xt[index] * x_t
        kl = (true_mean - predicted_mean(x_t, index)) ** 2 / (2 * post_var[index])
        total = total + scale * kl.flatten(1).sum(1)

    x_1 = noised(0)
    decoder = discretized_gaussian_log_likelihood(x0, predicted_mean(x_1, 0), 0.5 * torch.log(post_var_clipped[0]))
    total = total - decoder.flatten(1).sum(1)
    return (total / (dims * math.log(2.0))).float().cpu()
