"""Transition operators: P bound to the keys of one forward pass, computing P @ H without forming P unless
it has to (`to_dense()` forms it anyway, for tests and the reference formula). Built by the transitions
in `transitions.py`; the operator loop in `operator.py` calls `step_native` (one step source + alpha P @ H),
which the sparse (CSR) operators fuse into one product (`sparse_products.py`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .sparse_products import CSRCache, csr_product, csr_step

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

    def step_native(self, source: Tensor, alpha, h: Tensor) -> Tensor:
        """One diffusion step, source + alpha * P @ H, in the native layout (operators with a fused form
        override it)."""
        return source + alpha * self.matmul_native(h)

    def matmul(self, h: Tensor) -> Tensor:
        """P @ H with H of shape [B, heads, N, d]."""
        return self.from_native(self.matmul_native(self.to_native(h)))

    @abstractmethod
    def to_dense(self) -> Tensor:
        """P as a dense [B|1, heads|1, N, N] tensor (for tests and the reference formula)."""

    def diffuse_in_closed_form(self, v: Tensor, alpha, iterations: int) -> Optional[tuple[Tensor, Tensor]]:
        """(H_T, H_T - H_{T-1}) computed some cheaper way than T products P @ H, or None to let the caller
        iterate. alpha: a float or a tensor broadcastable to [B, heads, 1, 1]."""
        return None


class DenseOperator(TransitionOperator):
    def __init__(self, matrix: Tensor):
        self.matrix = matrix  # [B|1, heads|1, N, N]

    def matmul_native(self, h: Tensor) -> Tensor:
        return torch.matmul(self.matrix.to(h.dtype), h)

    def diffuse_in_closed_form(self, v: Tensor, alpha, iterations: int) -> Optional[tuple[Tensor, Tensor]]:
        """For small graphs (molecules: N <= 38 against heads * d = 128) the polynomial H_T = M_T v, with
        M_0 = I and M_{t+1} = (1 - a) I + a P M_t, costs T products of [N, N] matrices and one of M_T with
        v, instead of T products with H. One graph for every head is applied to v laid out [B, N, heads*d]
        by one batched product: measured at QM9 size (B 256, N 9, 4 heads of 32, 3 iterations) the
        diffusion's forward+backward takes 2.2 ms against 4.9 ms for the iteration."""
        b, heads, n, d = v.shape
        matrix = self.matrix.to(v.dtype)
        alpha_heads = alpha.shape[1] if isinstance(alpha, Tensor) and alpha.dim() > 1 else 1
        if max(matrix.shape[1], alpha_heads) * n > heads * d:
            return None  # T products [N, N] x [N, N] per distinct M cost more than T products P @ H
        eye = torch.eye(n, dtype=v.dtype, device=v.device)
        polynomial = previous = eye
        for _ in range(iterations):
            previous, polynomial = polynomial, (1 - alpha) * eye + alpha * torch.matmul(matrix, polynomial)
        if polynomial.dim() == 4 and polynomial.shape[1] == 1:  # one graph for every head
            rows = v.transpose(1, 2).reshape(b, n, heads * d)
            graph = polynomial[:, 0].expand(b, n, n)
            h = torch.bmm(graph, rows).view(b, n, heads, d).transpose(1, 2)
            before = previous[:, 0] if previous.dim() == 4 else previous  # M_0 = I is [N, N] (one iteration)
            with torch.no_grad():
                last_step = torch.bmm(graph - before.expand(b, n, n), rows)
            return h, last_step
        with torch.no_grad():
            last_step = torch.matmul(polynomial - previous, v)
        return torch.matmul(polynomial, v), last_step

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


class _CSROperator(TransitionOperator):
    """An operator whose P can be a CSR matrix (`self._csr`): its diffusion step is one fused sparse product
    where that applies (see `sparse_products.csr_step`), the plain step otherwise."""

    _csr: CSRCache

    def step_native(self, source: Tensor, alpha, h: Tensor) -> Tensor:
        stepped = csr_step(self._csr, source, alpha, h)
        return stepped if stepped is not None else super().step_native(source, alpha, h)


class SparseOperator(_CSROperator):
    """Edge-list P: rows `row`, columns `col`, batch element `batch`, weights already row-normalised.
    H is kept node-major, [B, N, heads*d], so one graph serves every head. Where the weights need no gradient
    (and on CPU / CUDA in float32 / float64) P @ H is a CSR sparse product, built once per forward pass:
    measured on 2 CPU cores at N = 1024 (8 edges a node), 6 products forward+backward take 30 ms against 64 ms
    forward alone for gather + index_add, whose backward is another scatter."""

    def __init__(self, batch: Tensor, row: Tensor, col: Tensor, weight: Tensor, batch_size: int, num_nodes: int):
        self.batch, self.row, self.col, self.weight = batch, row, col, weight
        self.batch_size, self.num_nodes = batch_size, num_nodes
        self._heads_dim: Optional[tuple[int, int]] = None
        self._csr = CSRCache(weight, lambda: (batch * num_nodes + row, batch * num_nodes + col, batch_size * num_nodes))

    def to_native(self, h: Tensor) -> Tensor:
        b, heads, n, d = h.shape
        self._heads_dim = (heads, d)
        return h.transpose(1, 2).reshape(b, n, heads * d)

    def from_native(self, h: Tensor) -> Tensor:
        heads, d = self._heads_dim
        # contiguous, so that the final scaled_dot_product_attention's backward runs at full speed
        return h.view(self.batch_size, self.num_nodes, heads, d).transpose(1, 2).contiguous()

    def matmul_native(self, h: Tensor) -> Tensor:
        product = csr_product(self._csr, h)
        if product is not None:
            return product
        flat = h.reshape(-1, h.shape[-1])  # [B*N, heads*d], a view
        messages = flat[self.batch * self.num_nodes + self.col] * self.weight.to(h.dtype)[:, None]
        return torch.zeros_like(flat).index_add_(0, self.batch * self.num_nodes + self.row, messages).view(h.shape)

    def to_dense(self) -> Tensor:
        dense = torch.zeros(self.batch_size, self.num_nodes, self.num_nodes, dtype=self.weight.dtype, device=self.weight.device)
        dense.index_put_((self.batch, self.row, self.col), self.weight, accumulate=True)
        return dense[:, None]


class KNNOperator(_CSROperator):
    """Top-k neighbours per row: indices and weights [B, heads, N, k]; H is kept as [B*heads*N, d]. Where the
    weights need no gradient P @ H is a CSR sparse product (6 products at N = 1024, 2 CPU cores: 5 ms against
    22 ms for k row gathers); otherwise k row gathers, each folded in with addcmul (O(N d) memory per product,
    O(N k) for P; 2x faster forward+backward than torch.gather per neighbour). Native layout [B, heads*N, d]."""

    def __init__(self, index: Tensor, weight: Tensor):
        self.index, self.weight = index, weight
        b, heads, n, k = index.shape
        offsets = torch.arange(b * heads, device=index.device).view(b, heads, 1, 1) * n
        self._offsets = offsets
        self._gather: Optional[tuple[Tensor, Tensor]] = None  # built only if the gather path runs
        self._csr = CSRCache(weight.reshape(-1), lambda: (
            torch.arange(b * heads * n, device=index.device).repeat_interleave(k), (index + offsets).reshape(-1), b * heads * n),
            per_row=k)

    def to_native(self, h: Tensor) -> Tensor:
        return h.reshape(h.shape[0], -1, h.shape[-1])

    def from_native(self, h: Tensor) -> Tensor:
        return h.view(*self.index.shape[:3], h.shape[-1])

    def matmul_native(self, h: Tensor) -> Tensor:
        product = csr_product(self._csr, h)
        if product is not None:
            return product
        flat = h.reshape(-1, h.shape[-1])  # [B*heads*N, d], a view
        rows, weights = self._gather_layout()
        weights = weights.to(h.dtype)
        out = flat.index_select(0, rows[0]) * weights[0]
        for m in range(1, rows.shape[0]):
            out = torch.addcmul(out, flat.index_select(0, rows[m]), weights[m])
        return out.view(h.shape)

    def _gather_layout(self) -> tuple[Tensor, Tensor]:
        """(rows [k, B*heads*N] into the flat H, weights [k, B*heads*N, 1]) for the gather path."""
        if self._gather is None:
            k = self.index.shape[-1]
            self._gather = ((self.index + self._offsets).reshape(-1, k).t().contiguous(),
                            self.weight.reshape(-1, k).t().unsqueeze(-1))
        return self._gather

    def to_dense(self) -> Tensor:
        b, heads, n, _ = self.index.shape
        dense = torch.zeros(b, heads, n, n, dtype=self.weight.dtype, device=self.weight.device)
        return dense.scatter_add_(3, self.index, self.weight)
