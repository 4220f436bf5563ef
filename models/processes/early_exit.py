"""Per-sample early exit for the fixed-step image samplers: a sample leaves the batch with its predicted clean
image once the chain is estimated to move that image by less than the tolerance (8-bit levels, RMS over pixels)
before it ends. `EarlyExit` makes the decision; `GaussianDiffusion.reverse` and the exit replay in
docs/results/sweeps/digits-exit-oracle both call it, so a replay is the rule itself."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

EIGHT_BIT = 127.5  # one 8-bit level is 1 / 127.5 of [-1, 1]
RATE_WINDOW = 0.5  # early exit measures the clean prediction's rate of change over at least this much log-SNR:
# replayed on recorded DDIM chains of the digits model, rates over 0.1 were noisy enough on fine grids that the
# decay extrapolated from two of them was too steep (at tolerance 4 the returned images were 1.9 / 6.5 / 6.9
# levels RMS from the full chain's at 20 / 50 / 100 steps); over 0.5 they were 0.7 / 1.8 / 2.2 (95th percentile
# 1.4 / 3.8 / 4.0, within the tolerance at every grid)
EXIT_MIN_LOG_SNR = 0.0  # and lets samples leave only where the signal outweighs the noise: at high noise the
# clean prediction is a faint guess whose small, slowly varying changes say nothing about the rest
EXIT_METHOD = f"remaining change extrapolated from rates over >= {RATE_WINDOW:g} log-SNR"  # recorded with sweeps


def change_rate(previous_x0: Tensor, x0: Tensor, previous_lambda: float, lam: float) -> Tensor:
    """Per sample [B]: the RMS change of the predicted clean image per unit of log-SNR, in 8-bit levels."""
    return EIGHT_BIT * (x0 - previous_x0).pow(2).flatten(1).mean(1).sqrt() / max(lam - previous_lambda, 1e-12)


def remaining_change(previous_rate: Tensor, rate: Tensor, step: float, left: float) -> Tensor:
    """Per sample [B]: how far (8-bit levels, RMS) the predicted clean image can still move in the `left`
    units of log-SNR before the chain ends, when its rate of change, measured as `previous_rate` and then
    `rate` over the last `step` of log-SNR, keeps decaying exponentially at the measured pace:
        integral_0^left rate e^(-k u) du = rate (1 - e^(-k left)) / k,   k = log(previous_rate / rate) / step.
    Rates per unit of log-SNR and their decay do not depend on how finely the steps cut the chain: that is
    what makes one exit tolerance mean the same at 20 and at 1000 steps. A rate that is not decaying (at high
    noise the prediction is a faint, slowly growing guess) gives infinity: no sample leaves then."""
    decay = torch.log(previous_rate.clamp_min(1e-30) / rate.clamp_min(1e-30)) / max(step, 1e-12)
    left_change = rate * -torch.expm1(-decay * left) / decay.clamp_min(1e-12)
    return torch.where(decay > 0, left_change, torch.full_like(rate, float("inf")))


class EarlyExit:
    """The exit decision along one chain, step by step (log-SNR increasing): the clean prediction's rate of
    change is measured between predictions at least RATE_WINDOW of log-SNR apart, and a sample has settled
    once `remaining_change` from its last two rates is below `tol`, from EXIT_MIN_LOG_SNR on."""

    def __init__(self, tol: float, end_log_snr: float):
        self.tol, self.end_log_snr = tol, end_log_snr
        self.anchor: Optional[tuple[Tensor, float]] = None  # (clean prediction [B, ...], its log-SNR)
        self.previous_rate: Optional[Tensor] = None

    def settled(self, clean: Tensor, log_snr: float) -> Optional[Tensor]:
        """Bool [B]: which samples may leave now; None where this step decides nothing."""
        if self.anchor is not None and log_snr - self.anchor[1] < RATE_WINDOW:
            return None  # too close to the last measurement for a new rate
        rate = change_rate(self.anchor[0], clean, self.anchor[1], log_snr) if self.anchor is not None else None
        decided = None
        if rate is not None and self.previous_rate is not None and log_snr >= EXIT_MIN_LOG_SNR:
            left = remaining_change(self.previous_rate, rate, log_snr - self.anchor[1], self.end_log_snr - log_snr)
            decided = left < self.tol
        self.anchor, self.previous_rate = (clean, log_snr), rate
        return decided

    def keep(self, mask: Tensor) -> None:
        """Only the samples in `mask` go on."""
        if self.anchor is not None:
            self.anchor = (self.anchor[0][mask], self.anchor[1])
        if self.previous_rate is not None:
            self.previous_rate = self.previous_rate[mask]
