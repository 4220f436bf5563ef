"""Discrete diffusion over categories with marginal transitions (the limit is the data's frequencies).

    Q_t    = alpha_t I + (1 - alpha_t) 1 m^T
    Qbar_t = abar_t I + (1 - abar_t) 1 m^T,        abar_t = prod_{s<=t} alpha_s (cosine schedule)

so noising to any t is one categorical draw, and the posterior between any two steps s < t uses
Q_{t|s} = (abar_t / abar_s) I + (1 - abar_t / abar_s) 1 m^T: sampling may jump over steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def cosine_alpha_bar(steps: int, s: float = 0.008) -> Tensor:
    """abar_t for t = 0..steps (abar_0 = 1), from the cosine schedule of Nichol & Dhariwal."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = (f / f[0]).clamp(min=0.0)
    alphas = (abar[1:] / abar[:-1]).clamp(min=1e-4, max=1.0)  # per-step alphas, the last one kept off zero
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(alphas, 0)])


class MarginalDiffusion(nn.Module):
    """Noise schedule and transitions for one categorical variable kind (atoms, or bonds)."""

    def __init__(self, marginals: Tensor, steps: int):
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps={steps!r}; need at least 1 diffusion step")
        self.steps = steps
        self.register_buffer("marginals", marginals.double() / marginals.sum())
        self.register_buffer("alpha_bar", cosine_alpha_bar(steps))

    def set_marginals(self, marginals: Tensor) -> None:
        self.marginals.copy_(marginals.double() / marginals.sum())

    def transition(self, t: Tensor, s: Tensor | None = None) -> Tensor:
        """Q_{t|s} (Qbar_t when s is None) as [B, K, K] matrices."""
        ratio = self.alpha_bar[t] if s is None else self.alpha_bar[t] / self.alpha_bar[s]
        k = self.marginals.shape[0]
        eye = torch.eye(k, dtype=ratio.dtype, device=ratio.device)
        return ratio[:, None, None] * eye + (1 - ratio)[:, None, None] * self.marginals[None, None, :]

    def noised_probs(self, x0: Tensor, t: Tensor) -> Tensor:
        """q(x_t | x_0) for one-hot or soft x0 [B, ..., K]; t [B]."""
        abar = self.alpha_bar[t].view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
        return abar * x0 + (1 - abar) * self.marginals.to(x0.dtype)

    def posterior_probs(self, x_t: Tensor, p_x0: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """p(x_s | x_t) = sum_x0 q(x_s | x_t, x0) p(x0 | x_t), for one-hot x_t and predicted p_x0 [B, ..., K]."""
        shape = (-1, *([1] * (x_t.dim() - 1)))
        abar_t, abar_s = self.alpha_bar[t].view(shape), self.alpha_bar[s].view(shape)
        m = self.marginals
        x_t, p_x0 = x_t.double(), p_x0.double()
        ratio = abar_t / abar_s
        m_at_xt = (x_t * m).sum(-1, keepdim=True)  # m[x_t]
        left = ratio * x_t + (1 - ratio) * m_at_xt  # Q_{t|s}[j, x_t] for every j
        z = abar_t * x_t + (1 - abar_t) * m_at_xt  # q(x_t | x0 = j) for every j
        w = p_x0 / z.clamp(min=1e-30)
        right = abar_s * w + (1 - abar_s) * m * w.sum(-1, keepdim=True)
        probs = left * right
        return probs / probs.sum(-1, keepdim=True).clamp(min=1e-30)
