"""Row-stochastic transitions P over the keys, the graph QGFD diffuses over.

A transition is a small description (grid size, a graph, k, ...). Bound to the keys of one forward pass
(`transition.bind(k, key_padding_mask)`) it becomes a `TransitionOperator`: something that computes
P @ H for H of shape [B, heads, N, d] without ever forming P unless it has to. `to_dense()` forms P
anyway ([B|1, heads|1, N, N]) for tests, the reference formula and small problems.

Padding convention (as torch.nn.MultiheadAttention): `key_padding_mask` is [B, N] bool, True marks a
padded key. Padded keys get no diffusion mass: every real row of P is renormalised over real columns.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Optional

import torch
from torch import Tensor

from .transition_operators import DenseOperator, GridOperator, KNNOperator, SparseOperator, TransitionOperator

ROW_SUM_TOLERANCE = 1e-4


class Transition(ABC):
    """A rule for building P from the keys (and, for graphs, from the data) of one forward pass."""

    @abstractmethod
    def bind(self, k: Tensor, key_padding_mask: Optional[Tensor] = None) -> TransitionOperator:
        """Build P for keys k [B, heads, N, d]."""


class GridTransition(Transition):
    """The pixel graph of an H x W feature map (tokens in row-major order): 4 or 8 neighbours plus a self loop,
    each row divided by its degree (smaller at the borders). P @ H is a fixed depthwise 3x3 convolution, so no
    N x N matrix is ever built: O(N d) a step.

    Args:
        height: rows of the feature map.
        width: columns of the feature map.
        neighbours: 4 or 8.

    Raises:
        ValueError: neighbours not 4 or 8, or a side below 1; at bind, keys that are not height x width tokens.

    Example:
        >>> import torch
        >>> P = GridTransition(2, 2).bind(torch.zeros(1, 1, 4, 3)).to_dense()
        >>> P.shape[-2:], torch.allclose(P.sum(-1).double(), torch.ones(4, dtype=torch.double))
        (torch.Size([4, 4]), True)
    """

    def __init__(self, height: int, width: int, neighbours: int = 8):
        if neighbours not in (4, 8):
            raise ValueError(f"GridTransition: neighbours={neighbours!r}; use 4 or 8")
        if int(height) < 1 or int(width) < 1:
            raise ValueError(f"GridTransition: height={height!r}, width={width!r}; both must be >= 1")
        self.height, self.width, self.neighbours = int(height), int(width), neighbours

    def bind(self, k: Tensor, key_padding_mask: Optional[Tensor] = None) -> TransitionOperator:
        n = k.shape[2]
        if n != self.height * self.width:
            raise ValueError(
                f"GridTransition({self.height}x{self.width}) needs N = {self.height * self.width} keys, got N = {n}"
            )
        if key_padding_mask is not None and bool(key_padding_mask.any()):
            raise ValueError("GridTransition does not take a key_padding_mask: every pixel of a feature map is real")
        return GridOperator(self.height, self.width, self.neighbours, heads=k.shape[1], dim=k.shape[3])

    def __repr__(self) -> str:
        return f"GridTransition({self.height}, {self.width}, neighbours={self.neighbours})"


class AdjacencyTransition(Transition):
    """An explicit graph over the keys (molecules use the current noisy bond graph).

    Rows are normalised to sum to 1; a row without edges gets a self loop, so an isolated key keeps its value.

    Args:
        adjacency: a dense (weighted) adjacency [N, N] or [B, N, N]; or give the sparse form instead.
        edge_index: [2, E] edges (row i, column j: i receives from j).
        edge_weight: [E] weights (1 when omitted).
        edge_batch: [E] the batch element of each edge (every element when omitted).

    Example:
        >>> import torch
        >>> path = torch.tensor([[0., 1., 0.], [1., 0., 1.], [0., 1., 0.]])
        >>> AdjacencyTransition(path).bind(torch.zeros(1, 1, 3, 2)).to_dense()[0, 0]
        tensor([[0.0000, 1.0000, 0.0000],
                [0.5000, 0.0000, 0.5000],
                [0.0000, 1.0000, 0.0000]])
    """

    def __init__(
        self,
        adjacency: Optional[Tensor] = None,
        *,
        edge_index: Optional[Tensor] = None,
        edge_weight: Optional[Tensor] = None,
        edge_batch: Optional[Tensor] = None,
    ):
        if (adjacency is None) == (edge_index is None):
            raise ValueError("AdjacencyTransition: give exactly one of `adjacency` (dense) or `edge_index` (sparse)")
        if adjacency is not None and adjacency.dim() not in (2, 3):
            raise ValueError(f"AdjacencyTransition: adjacency has shape {tuple(adjacency.shape)}; use [N, N] or [B, N, N]")
        if edge_index is not None and (edge_index.dim() != 2 or edge_index.shape[0] != 2):
            raise ValueError(f"AdjacencyTransition: edge_index has shape {tuple(edge_index.shape)}; use [2, E]")
        if edge_weight is not None and edge_index is not None and edge_weight.shape != edge_index.shape[1:]:
            raise ValueError(
                f"AdjacencyTransition: edge_weight has shape {tuple(edge_weight.shape)}; use [{edge_index.shape[1]}]"
            )
        for weights, name in ((adjacency, "adjacency"), (edge_weight, "edge_weight")):
            if weights is not None:
                _check_weights(weights, name)
        self.adjacency, self.edge_index, self.edge_weight, self.edge_batch = adjacency, edge_index, edge_weight, edge_batch

    def bind(self, k: Tensor, key_padding_mask: Optional[Tensor] = None) -> TransitionOperator:
        b, _, n, _ = k.shape
        if self.adjacency is not None:
            return self._bind_dense(b, n, key_padding_mask, k.dtype)
        return self._bind_sparse(b, n, key_padding_mask, k)

    def _bind_dense(self, b: int, n: int, key_padding_mask: Optional[Tensor], dtype) -> TransitionOperator:
        adj = self.adjacency
        if adj.shape[-1] != n or adj.shape[-2] != n or (adj.dim() == 3 and adj.shape[0] not in (1, b)):
            raise ValueError(f"AdjacencyTransition: adjacency has shape {tuple(adj.shape)}; keys need [{n}, {n}] or [{b}, {n}, {n}]")
        adj = adj.to(dtype)
        adj = adj.reshape(-1, n, n)
        if key_padding_mask is not None:
            adj = adj.masked_fill(key_padding_mask[:, None, :], 0.0)
        return DenseOperator(_normalise_rows(adj)[:, None])

    def _bind_sparse(self, b: int, n: int, key_padding_mask: Optional[Tensor], k: Tensor) -> TransitionOperator:
        row, col = self.edge_index[0].long(), self.edge_index[1].long()
        weight = self.edge_weight if self.edge_weight is not None else torch.ones(row.shape, device=k.device, dtype=k.dtype)
        weight = weight.to(k.dtype)
        if row.numel() and (int(row.max()) >= n or int(col.max()) >= n or int(row.min()) < 0 or int(col.min()) < 0):
            raise ValueError(f"AdjacencyTransition: edge_index refers to nodes outside 0..{n - 1}")
        if self.edge_batch is not None:
            batch = self.edge_batch.long()
        else:  # the same graph for every batch element
            batch = torch.arange(b, device=row.device).repeat_interleave(row.numel())
            row, col, weight = row.repeat(b), col.repeat(b), weight.repeat(b)
        if key_padding_mask is not None:
            keep = ~key_padding_mask[batch, col]
            batch, row, col, weight = batch[keep], row[keep], col[keep], weight[keep]
        degree = torch.zeros(b * n, dtype=weight.dtype, device=weight.device).index_add_(0, batch * n + row, weight)
        lonely = (degree == 0).nonzero().squeeze(1)  # rows with no edges: a self loop
        batch = torch.cat([batch, lonely // n])
        row = torch.cat([row, lonely % n])
        col = torch.cat([col, lonely % n])
        weight = torch.cat([weight, torch.ones(lonely.shape, dtype=weight.dtype, device=weight.device)])
        degree = degree.index_fill(0, lonely, 1.0)
        weight = weight / degree[batch * n + row]
        return SparseOperator(batch, row, col, weight, b, n)


class KNNTransition(Transition):
    """A graph from the keys themselves: each key keeps its k most similar keys (k_i . k_j / sqrt d), with a
    softmax over the kept entries (the seed's default transition).

    Args:
        k: neighbours kept per key (at most N).
        chunk_size: rows built at a time; None: as many as keep one [B, heads, chunk, N] block under
            `block_elements`, so that beyond that block memory is O(N k).
        grad: let gradients flow through P's weights (the choice of neighbours is never differentiable).
        block_elements: the automatic chunk's size limit.

    Raises:
        ValueError: k or chunk_size below 1.

    Example:
        >>> import torch
        >>> P = KNNTransition(k=2).bind(torch.randn(1, 1, 5, 4)).to_dense()
        >>> int((P[0, 0] > 0).sum(-1).max()), torch.allclose(P.sum(-1), torch.ones(5))
        (2, True)
    """

    def __init__(self, k: int = 8, *, chunk_size: Optional[int] = None, grad: bool = False, block_elements: int = 2**21):
        if int(k) < 1:
            raise ValueError(f"KNNTransition: k={k!r}; need k >= 1")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"KNNTransition: chunk_size={chunk_size!r}; need >= 1 (or None for automatic)")
        self.k, self.chunk_size, self.grad, self.block_elements = int(k), chunk_size, grad, int(block_elements)

    def bind(self, k: Tensor, key_padding_mask: Optional[Tensor] = None) -> TransitionOperator:
        b, heads, n, d = k.shape
        kk = min(self.k, n)
        keys = k if self.grad else k.detach()
        scale = 1.0 / math.sqrt(d)
        chunk = self.chunk_size or max(1, self.block_elements // (b * heads * n))
        indices, weights = [], []
        with torch.set_grad_enabled(self.grad and torch.is_grad_enabled()):
            for start in range(0, n, chunk):
                sim = torch.matmul(keys[:, :, start : start + chunk], keys.transpose(-1, -2))
                if key_padding_mask is not None:
                    sim = sim.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
                values, index = sim.topk(kk, dim=-1)  # the scale is positive: applied to the kept k alone
                indices.append(index)
                weights.append(torch.softmax(values * scale, dim=-1))
        index, weight = torch.cat(indices, dim=2), torch.cat(weights, dim=2)
        if key_padding_mask is not None:
            # rows with fewer real keys than k picked -inf entries: softmax gave them zero weight already
            weight = torch.nan_to_num(weight, nan=0.0)
        return KNNOperator(index, weight)

    def __repr__(self) -> str:
        return f"KNNTransition(k={self.k}, chunk_size={self.chunk_size}, grad={self.grad})"


class DenseTransition(Transition):
    """P = softmax(k k^T / sqrt d) over all (unpadded) keys: an N x N matrix, for small N and comparisons.

    Example:
        >>> import torch
        >>> P = DenseTransition().bind(torch.randn(2, 1, 6, 4)).to_dense()
        >>> P.shape, torch.allclose(P.sum(-1), torch.ones(2, 1, 6))
        (torch.Size([2, 1, 6, 6]), True)
    """

    def bind(self, k: Tensor, key_padding_mask: Optional[Tensor] = None) -> TransitionOperator:
        sim = torch.matmul(k, k.transpose(-1, -2)) / math.sqrt(k.shape[-1])
        if key_padding_mask is not None:
            sim = sim.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        return DenseOperator(torch.softmax(sim, dim=-1))

    def __repr__(self) -> str:
        return "DenseTransition()"


class MatrixTransition(Transition):
    """A user-given row-stochastic P: [N, N], [B, N, N] or [B, heads, N, N]."""

    def __init__(self, matrix: Tensor, check: bool = True):
        if matrix.dim() not in (2, 3, 4):
            raise ValueError(
                f"transition has shape {tuple(matrix.shape)}; a dense transition must be [N, N], [B, N, N] or [B, H, N, N]"
            )
        if check and not matrix.requires_grad:
            _check_row_stochastic(matrix)
        self.matrix = matrix

    def bind(self, k: Tensor, key_padding_mask: Optional[Tensor] = None) -> TransitionOperator:
        b, heads, n, _ = k.shape
        p = self.matrix
        if p.dim() == 2:
            p = p[None, None]
        elif p.dim() == 3:
            p = p[:, None]
        if p.shape[-2:] != (n, n) or p.shape[0] not in (1, b) or p.shape[1] not in (1, heads):
            raise ValueError(
                f"transition has shape {tuple(self.matrix.shape)}; keys [B={b}, H={heads}, N={n}, d] need "
                f"[{n}, {n}], [{b}, {n}, {n}] or [{b}, {heads}, {n}, {n}]"
            )
        if key_padding_mask is not None:
            p = _normalise_rows(p.masked_fill(key_padding_mask[:, None, None, :], 0.0))
        return DenseOperator(p)


def _normalise_rows(matrix: Tensor) -> Tensor:
    """Rows divided by their sums; empty rows become a self loop."""
    n = matrix.shape[-1]
    sums = matrix.sum(-1, keepdim=True)
    empty = sums == 0
    eye = torch.eye(n, dtype=matrix.dtype, device=matrix.device)
    matrix = torch.where(empty, eye, matrix)
    return matrix / torch.where(empty, torch.ones_like(sums), sums)


def _check_weights(weights: Tensor, name: str) -> None:
    """Graph weights must be finite and non-negative (a bool adjacency needs no look)."""
    if weights.dtype == torch.bool:
        return
    if not bool(torch.isfinite(weights).all()):
        raise ValueError(f"AdjacencyTransition: {name} has NaN or infinite entries; weights must be finite and >= 0")
    if bool((weights < 0).any()):
        raise ValueError(f"AdjacencyTransition: {name} has negative entries (min {float(weights.min()):.3g}); "
                         f"weights must be >= 0 (a transition mixes values, it cannot subtract them)")


def _check_row_stochastic(matrix: Tensor) -> None:
    if not bool(torch.isfinite(matrix).all()):
        raise ValueError("transition has NaN or infinite entries; it must be row-stochastic")
    if bool((matrix < 0).any()):
        raise ValueError(f"transition has negative entries (min {float(matrix.min()):.3g}); it must be row-stochastic")
    sums = matrix.sum(-1)
    worst = float((sums - 1).abs().max())
    if worst > ROW_SUM_TOLERANCE:
        raise ValueError(
            f"transition rows must sum to 1 (row-stochastic); the worst row sums to "
            f"{float(sums.flatten()[(sums - 1).abs().flatten().argmax()]):.6g} (off by {worst:.3g})"
        )


def as_transition(transition) -> Transition:
    """Accept a Transition object or a dense row-stochastic tensor."""
    if isinstance(transition, Transition):
        return transition
    if isinstance(transition, Tensor):
        return MatrixTransition(transition)
    raise TypeError(
        f"transition must be a Transition (GridTransition, AdjacencyTransition, KNNTransition, DenseTransition) "
        f"or a dense row-stochastic tensor, got {type(transition).__name__}"
    )
