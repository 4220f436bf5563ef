"""The log signal-to-noise ratio of a discrete Gaussian schedule, defined once: lambda = log(alpha / sigma),
with alpha^2 = abar (diffusers' alphas_cumprod) and sigma^2 = 1 - abar. The adaptive sampler steps in it and
early exit measures rates of change over it."""

from __future__ import annotations

import torch
from torch import Tensor


class LogSNRSchedule:
    """A discrete schedule's log alpha, linear between its timesteps: alpha, sigma and the continuous
    timestep for any lambda between the noisiest (index T-1) and the cleanest (index 0) timestep."""

    def __init__(self, alpha_bar: Tensor):
        self.log_alpha = 0.5 * alpha_bar.double().log()  # decreasing in the timestep index
        self.lambdas = self.lambda_of(self.log_alpha)  # [T] the log-SNR of each timestep
        self.lambda_max = float(self.lambda_of(self.log_alpha[0]))
        self.lambda_min = float(self.lambda_of(self.log_alpha[-1]))

    @staticmethod
    def lambda_of(log_alpha: Tensor) -> Tensor:
        return log_alpha - 0.5 * torch.log(-torch.expm1(2 * log_alpha))

    @staticmethod
    def alpha_sigma(lam: Tensor) -> tuple[Tensor, Tensor]:
        return torch.sigmoid(2 * lam).sqrt(), torch.sigmoid(-2 * lam).sqrt()

    def timestep(self, lam: Tensor) -> Tensor:
        """The continuous timestep (0 .. T-1) whose interpolated log alpha gives lambda."""
        target = -0.5 * torch.nn.functional.softplus(-2 * lam)  # log alpha = -log(1 + e^(-2 lambda)) / 2
        decreasing = self.log_alpha.to(device=lam.device, dtype=lam.dtype)
        upper = torch.searchsorted(-decreasing, -target).clamp(1, len(decreasing) - 1)
        hi, lo = decreasing[upper - 1], decreasing[upper]
        return (upper - 1 + (hi - target) / (hi - lo)).clamp(0, len(decreasing) - 1)
