"""Transition operators: P bound to the keys of one forward pass, computing P @ H without forming P unless
it has to (`to_dense()` forms it anyway, for tests and the reference formula). Built by the transitions
in `transitions.py`; the operator loop in `operator.py` only calls `matmul_native`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

class TransitionOperator(ABC):
    """P for one forward pass. `to_native`/`from_native` let an operator keep H in the layout its
    product likes best for the whole diffusion loop (the grid keeps [B, heads*d, H, W])."""

    def to_native(self, h: Tensor) -> Tensor:
        return h

    def from_native(self, h: Tensor) -> Tensor:
        return h

    @abstractmethod
    def matmul_native(self, h: Tensor) -> Tensor:
        """P @ H with H in the native layout."""

    def matmul(self, h: Tensor) -> Tensor:
        """P @ H with H of shape [B, heads, N, d]."""
        return self.from_native(self.matmul_native(self.to_native(h)))

    @abstractmethod
    def to_dense(self) -> Tensor:
        """P as a dense [B|1, heads|1, N, N] tensor (for tests and the reference formula)."""


class DenseOperator(TransitionOperator):
    def __init__(self, matrix: Tensor):
        self.matrix = matrix  # [B|1, heads|1, N, N]

    def matmul_native(self, h: Tensor) -> Tensor:
        return torch.matmul(self.matrix.to(h.dtype), h)

    def to_dense(self) -> Tensor:
        return self.matrix


class GridOperator(TransitionOperator):
    """Mean over the 3x3 (8 neighbours) or cross (4 neighbours) neighbourhood, self included, with the
    degree counted at the borders. Works on [B, heads*d, H, W]: O(N d) per product, no N x N matrix."""

    def __init__(self, height: int, width: int, neighbours: int, heads: int, dim: int):
        self.height, self.width, self.neighbours = height, width, neighbours
        self.heads, self.dim = heads, dim
        self._weights: Optional[tuple[Tensor, Tensor]] = None  # (kernel, inverse degree), built on first use

    def _kernel_and_inverse_degree(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Built once per forward pass, not once per diffusion step."""
        if self._weights is None or self._weights[0].dtype != h.dtype or self._weights[0].device != h.device:
            kernel = _grid_kernel(self.neighbours, h.device, h.dtype).expand(h.shape[1], 1, 3, 3)
            self._weights = (kernel, _inverse_degree(self.height, self.width, self.neighbours, h.device, h.dtype))
        return self._weights

    def to_native(self, h: Tensor) -> Tensor:
        b = h.shape[0]
        return h.transpose(-1, -2).reshape(b, self.heads * self.dim, self.height, self.width)

    def from_native(self, h: Tensor) -> Tensor:
        b = h.shape[0]
        # contiguous, so that the final scaled_dot_product_attention can use its fused kernels
        return h.reshape(b, self.heads, self.dim, self.height * self.width).transpose(-1, -2).contiguous()

    def matmul_native(self, h: Tensor) -> Tensor:
        # A fixed depthwise 3x3 convolution sums the neighbourhood (zero padding leaves out what lies
        # outside the map); dividing by the neighbour count there normalises the rows, borders included.
        # (Measured on 2 CPU cores this beats avg_pool2d(count_include_pad=False) by about 5x.)
        kernel, inverse_degree = self._kernel_and_inverse_degree(h)
        return F.conv2d(h, kernel, padding=1, groups=h.shape[1]) * inverse_degree

    def to_dense(self) -> Tensor:
        return grid_matrix(self.height, self.width, self.neighbours)[None, None]


def _grid_kernel(neighbours: int, device, dtype) -> Tensor:
    kernel = torch.ones(3, 3, device=device, dtype=dtype)
    if neighbours == 4:
        kernel[0, 0] = kernel[0, 2] = kernel[2, 0] = kernel[2, 2] = 0.0
    return kernel[None, None]


def _inverse_degree(height: int, width: int, neighbours: int, device, dtype) -> Tensor:
    ones = torch.ones(1, 1, height, width, device=device, dtype=dtype)
    return 1.0 / F.conv2d(ones, _grid_kernel(neighbours, device, dtype), padding=1)


def grid_matrix(height: int, width: int, neighbours: int = 8, dtype=torch.float64) -> Tensor:
    """The grid transition as an explicit [N, N] matrix (row-major pixels); for tests only."""
    n = height * width
    matrix = torch.zeros(n, n, dtype=dtype)
    if neighbours == 8:
        offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    else:
        offsets = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    for y in range(height):
        for x in range(width):
            cols = [
                (y + dy) * width + (x + dx)
                for dy, dx in offsets
                if 0 <= y + dy < height and 0 <= x + dx < width
            ]
            matrix[y * width + x, cols] = 1.0 / len(cols)
    return matrix


class SparseOperator(TransitionOperator):
    """Edge-list P: rows `row`, columns `col`, batch element `batch`, weights already row-normalised."""

    def __init__(self, batch: Tensor, row: Tensor, col: Tensor, weight: Tensor, batch_size: int, num_nodes: int):
        self.batch, self.row, self.col, self.weight = batch, row, col, weight
        self.batch_size, self.num_nodes = batch_size, num_nodes

    def matmul_native(self, h: Tensor) -> Tensor:
        b, heads, n, d = h.shape
        flat = h.transpose(1, 2).reshape(b * n, heads, d)  # node-major so edges index one dimension
        messages = flat[self.batch * n + self.col] * self.weight.to(h.dtype)[:, None, None]
        out = torch.zeros_like(flat).index_add_(0, self.batch * n + self.row, messages)
        return out.reshape(b, n, heads, d).transpose(1, 2)

    def to_dense(self) -> Tensor:
        dense = torch.zeros(self.batch_size, self.num_nodes, self.num_nodes, dtype=self.weight.dtype, device=self.weight.device)
        dense.index_put_((self.batch, self.row, self.col), self.weight, accumulate=True)
        return dense[:, None]


class KNNOperator(TransitionOperator):
    """Top-k neighbours per row: indices and weights [B, heads, N, k]. P @ H is k row gathers from the
    flattened [B*heads*N, d] values, each folded in with addcmul: O(N d) memory per product, O(N k) for P.
    (Measured on 2 CPU cores at N = 1024: 2x faster forward+backward than torch.gather per neighbour,
    5x faster than one gather of all k neighbours followed by a matmul.)"""

    def __init__(self, index: Tensor, weight: Tensor):
        self.index, self.weight = index, weight
        b, heads, n, k = index.shape
        offsets = torch.arange(b * heads, device=index.device).view(b, heads, 1, 1) * n
        self._rows = (index + offsets).reshape(-1, k).t().contiguous()  # [k, B*heads*N]
        self._weights = weight.reshape(-1, k).t().unsqueeze(-1)  # [k, B*heads*N, 1]

    def matmul_native(self, h: Tensor) -> Tensor:
        flat = h.reshape(-1, h.shape[-1])
        weights = self._weights.to(h.dtype)
        out = flat.index_select(0, self._rows[0]) * weights[0]
        for m in range(1, self._rows.shape[0]):
            out = torch.addcmul(out, flat.index_select(0, self._rows[m]), weights[m])
        return out.view(h.shape)

    def to_dense(self) -> Tensor:
        b, heads, n, _ = self.index.shape
        dense = torch.zeros(b, heads, n, n, dtype=self.weight.dtype, device=self.weight.device)
        return dense.scatter_add_(3, self.index, self.weight)
