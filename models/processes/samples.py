"""The declared result types of sampling: one batch out of a reverse chain, and a set of samples with what
producing it cost. Image and molecule models return subclasses of `SampleSet`; sweeps, sample files and the
multi-process gather read only the fields declared here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor


@dataclass
class ChainResult:
    """One batch out of a reverse chain (fixed-step, adaptive, or the molecule chain's)."""

    samples: Tensor  # [B, ...] as the chain leaves them
    evaluations: Tensor  # [B] network calls per sample (early exit and adaptive steps make them differ)
    rejected: Tensor  # [B] rejected steps per sample (an adaptive sampler's; zeros for fixed-step chains)


@dataclass
class SampleSet:
    """What a model's `sample` returns besides the samples: per-sample costs, kept as tensors so that shares
    drawn by several processes merge by concatenation; their summary is computed from them, in one place."""

    evaluations: Tensor  # [num] network calls of each sample
    rejected: Tensor  # [num] rejected steps of each sample (zeros where the sampler rejects none)
    qgfd_iterations: Optional[float]  # mean QGFD diffusion iterations per attention call, None without QGFD
    seconds: float

    @property
    def network_evaluations(self) -> float:
        """Mean network calls per sample."""
        return float(self.evaluations.mean())

    @property
    def evaluations_min(self) -> float:
        return float(self.evaluations.min())

    @property
    def evaluations_max(self) -> float:
        return float(self.evaluations.max())

    @property
    def rejected_steps(self) -> float:
        """Mean rejected steps per sample."""
        return float(self.rejected.float().mean())


class NonFiniteSamples(ValueError):
    """A chain that came out non-finite (the model or the sampler settings diverge): nothing of it is kept."""
