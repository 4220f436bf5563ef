"""Random-walk structural features (RRWP): what the strongest recent graph generators feed their denoisers, and
the baseline QGFD has to beat, since QGFD's diffusion is a learned, query-conditioned polynomial in the same P.

For a graph with adjacency A (padding rows empty), P = D^-1 A (an isolated node's row stays zero) and its powers
P^1 .. P^K give node features diag(P^k) (the chance a k-step walk returns: rings of length k show up here) and
pair features (P^k)_ij (reachability within k steps). Computed in one batch on the model's device, in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor


def random_walk_features(adjacency: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """adjacency [B, n, n] (bool or weights, symmetric or not) -> node [B, n, steps], pair [B, n, n, steps]."""
    if steps < 1:
        raise ValueError(f"steps={steps!r}; need at least one random-walk step")
    weights = adjacency.float()
    degree = weights.sum(-1, keepdim=True)
    walk = weights / degree.clamp_min(1e-12)  # zero rows stay zero: isolated and padded nodes go nowhere
    powers, power = [], walk
    for k in range(steps):
        if k:
            power = torch.bmm(power, walk)
        powers.append(power)
    pair = torch.stack(powers, dim=-1)
    node = torch.diagonal(pair, dim1=1, dim2=2).transpose(1, 2)
    return node, pair
