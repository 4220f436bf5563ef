"""How far a stack of attention layers has collapsed its token (node) states, per graph of a batch.

Softmax attention is row-stochastic, so each layer averages states toward their mean; pure attention loses rank
doubly exponentially with depth (Dong et al. 2021), and a second row-stochastic average over a graph (QGFD) is a
further contraction. Three views of the same loss, each per graph on its real (unpadded) nodes:

- `consensus_distance`: ||X - 1 mean(X)^T||_F / ||X||_F, the relative distance to the subspace where every node
  holds the same state (Dong et al.); 0 when all rows are equal, and it does not grow with the states' scale;
- `effective_rank`: exp of the entropy of the normalised singular values (Roy and Vetterli 2007); 1 for identical
  rows, d for d orthonormal rows; it counts the directions the states still span;
- `dirichlet_energy`: 1/2 sum_ij A_ij ||x_i - x_j||^2, how much states differ across the graph's edges (the
  oversmoothing measure of graph networks); `relative=True` divides by ||X||_F^2, so layers of different scale
  compare.

All take states [B, n, d] (or [n, d]) and an optional node mask [B, n] (padding rows are ignored) and return one
value per graph, in float64.

Example:
    >>> import torch
    >>> same = torch.ones(1, 4, 3)
    >>> consensus_distance(same).item(), round(effective_rank(same).item(), 6)
    (0.0, 1.0)
    >>> path = torch.tensor([[0., 1., 0.], [1., 0., 1.], [0., 1., 0.]])
    >>> dirichlet_energy(torch.tensor([[0.], [1.], [3.]]), path).item()  # (1 - 0)^2 + (3 - 1)^2
    5.0
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

MEASURES = ("consensus_distance", "effective_rank", "dirichlet_energy")


def _batched(x: Tensor, mask: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """(states [B, n, d] in float64 with padding rows zeroed, mask [B, n, 1] as float64)."""
    if x.dim() == 2:
        x = x[None]
        mask = None if mask is None else mask.reshape(1, -1)
    if x.dim() != 3:
        raise ValueError(f"states of shape {tuple(x.shape)}; need [nodes, features] or [batch, nodes, features]")
    keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.bool()
    if keep.shape != x.shape[:2]:
        raise ValueError(f"mask of shape {tuple(keep.shape)} does not match states {tuple(x.shape)}")
    weight = keep[..., None].double()
    return x.double() * weight, weight


def consensus_distance(x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """||X - 1 mean(X)^T||_F / ||X||_F per graph over its real nodes (0 for an all-zero X)."""
    x, weight = _batched(x, mask)
    mean = x.sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1)
    residual = (x - mean) * weight
    norm = x.flatten(1).norm(dim=1)
    return torch.where(norm > 0, residual.flatten(1).norm(dim=1) / norm.clamp_min(1e-300), torch.zeros_like(norm))


def effective_rank(x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """exp(H(s / sum s)) over the singular values s of each graph's states (padding rows are zero, so they add no
    singular value); 0 for an all-zero X."""
    x, _ = _batched(x, mask)
    values = torch.linalg.svdvals(x)
    total = values.sum(-1, keepdim=True)
    share = values / total.clamp_min(1e-300)
    entropy = -(share * share.clamp_min(1e-300).log()).sum(-1)
    return torch.where(total[..., 0] > 0, entropy.exp(), torch.zeros_like(entropy))


def dirichlet_energy(x: Tensor, adjacency: Tensor, mask: Optional[Tensor] = None, relative: bool = False) -> Tensor:
    """1/2 sum_ij A_ij ||x_i - x_j||^2 per graph (A symmetric or not: each ordered pair counts half); with
    `relative`, divided by ||X||_F^2 (0 for an all-zero X)."""
    x, weight = _batched(x, mask)
    a = adjacency.double()
    if a.dim() == 2:
        a = a[None]
    if a.shape != (x.shape[0], x.shape[1], x.shape[1]):
        raise ValueError(f"adjacency of shape {tuple(adjacency.shape)} does not match states {tuple(x.shape)}")
    a = a * weight * weight.transpose(1, 2)
    squared = (x * x).sum(-1)  # ||x_i||^2
    gram = x @ x.transpose(1, 2)
    distances = (squared[:, :, None] + squared[:, None, :] - 2 * gram).clamp_min(0)
    energy = 0.5 * (a * distances).sum((1, 2))
    if not relative:
        return energy
    norm = squared.sum(1)
    return torch.where(norm > 0, energy / norm.clamp_min(1e-300), torch.zeros_like(norm))


def collapse_measures(states: list[Tensor], adjacency: Tensor | list[Tensor], mask: Optional[Tensor] = None
                      ) -> dict[str, list[float]]:
    """Each measure at each layer's states (the input embedding first), averaged over the batch's graphs; the
    Dirichlet energy relative to the states' squared norm, over `adjacency` (one for every layer, or one a layer
    where layers see different token sets, as a U-Net's resolutions do)."""
    found: dict[str, list[float]] = {name: [] for name in MEASURES}
    graphs = adjacency if isinstance(adjacency, (list, tuple)) else [adjacency] * len(states)
    for x, adjacency in zip(states, graphs):
        found["consensus_distance"].append(float(consensus_distance(x, mask).mean()))
        found["effective_rank"].append(float(effective_rank(x, mask).mean()))
        found["dirichlet_energy"].append(float(dirichlet_energy(x, adjacency, mask, relative=True).mean()))
    return found
