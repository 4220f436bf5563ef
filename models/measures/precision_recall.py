"""Fidelity and diversity apart: precision and recall (Kynkaanniemi et al. 2019) and density and coverage (Naeem
et al. 2020) of generated images' features against real ones, from k-nearest-neighbour balls (k = 3 by default, as
both papers use for their headline numbers), in the same Inception pool3 features as FID.

With R the real features, F the fake ones and r_k(x) the distance from x to its k-th nearest neighbour in its own
set (itself excluded):
- precision: the share of fakes inside some real ball, |{f : exists r, d(f, r) <= r_k(r)}| / |F|;
- recall: the share of reals inside some fake ball, |{r : exists f, d(r, f) <= r_k(f)}| / |R|;
- density: (1 / (k |F|)) sum_f |{r : d(f, r) <= r_k(r)}|, how many real balls hold each fake (1 for a fake set
  distributed like the real one; above 1 where fakes crowd dense real regions);
- coverage: the share of reals whose own ball holds some fake, |{r : min_f d(r, f) <= r_k(r)}| / |R|.

FID folds quality and diversity into one number; here a model that draws only good images of a few modes shows
high precision and low recall.

Example:
    >>> import torch
    >>> real = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    >>> same = precision_recall_density_coverage(real, real)
    >>> same["precision"], same["recall"], same["coverage"]
    (1.0, 1.0, 1.0)
    >>> far = precision_recall_density_coverage(real, real + 100.0)
    >>> far["precision"], far["recall"], far["density"], far["coverage"]
    (0.0, 0.0, 0.0, 0.0)
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

NEAREST_K = 3


def _pairwise_blocks(left: Tensor, right: Tensor, block: int = 2048):
    """Yields (row slice, Euclidean distances [rows, len(right)]) in float64, a block of rows at a time."""
    for start in range(0, len(left), block):
        rows = left[start:start + block]
        yield slice(start, start + len(rows)), torch.cdist(rows, right)


def kth_neighbour_radii(features: Tensor, k: int) -> Tensor:
    """The distance from each row to its k-th nearest other row."""
    radii = torch.empty(len(features), dtype=features.dtype)
    for rows, distances in _pairwise_blocks(features, features):
        radii[rows] = distances.topk(k + 1, dim=1, largest=False).values[:, k]  # column 0 is the row itself
    return radii


def precision_recall_density_coverage(real: Tensor, fake: Tensor, k: int = NEAREST_K) -> dict[str, Optional[float]]:
    """The four measures of `fake` [M, F] against `real` [N, F] (see the module docstring); each None when a set has
    k rows or fewer (a k-th neighbour needs k others)."""
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features of shapes {tuple(real.shape)} and {tuple(fake.shape)}; need [N, F] and [M, F]")
    if min(len(real), len(fake)) <= k:
        return {"precision": None, "recall": None, "density": None, "coverage": None}
    real, fake = real.double(), fake.double()
    real_radii, fake_radii = kth_neighbour_radii(real, k), kth_neighbour_radii(fake, k)
    inside_counts = torch.zeros(len(fake), dtype=torch.float64)  # real balls holding each fake
    covered = torch.zeros(len(real), dtype=torch.bool)  # reals whose own ball holds a fake
    recalled = torch.zeros(len(real), dtype=torch.bool)  # reals inside some fake ball
    for rows, distances in _pairwise_blocks(fake, real):  # [fakes of the block, reals]
        inside = distances <= real_radii[None]
        inside_counts[rows] = inside.sum(1).double()
        covered |= inside.any(0)
        recalled |= (distances <= fake_radii[rows, None]).any(0)
    return {"precision": float((inside_counts > 0).double().mean()), "recall": float(recalled.double().mean()),
            "density": float(inside_counts.sum() / (k * len(fake))), "coverage": float(covered.double().mean())}
