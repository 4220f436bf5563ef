"""P @ H as a CSR sparse product for operators whose P needs no gradient, with a backward that builds P^T
once per forward pass, and one diffusion step source + alpha * P @ H fused into a single sparse addmm."""

from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor


class CSRCache:
    """P (and P^T, for the backward pass) as CSR tensors in H's dtype, built on first use from the weights and
    `positions()` = (global rows, global columns, size), or None where the sparse product does not apply:
    weights that need a gradient (the product here gives none for them), devices other than CPU / CUDA,
    dtypes other than float32 / float64. The positions are computed only when a matrix is built, not on
    every product."""

    def __init__(self, weight: Tensor, positions, per_row: Optional[int] = None):
        """per_row: every row holds exactly this many entries, in row order (knn): P is then put together as
        CSR directly, columns sorted within each row, without the COO detour's global sort."""
        self._weight, self._positions, self._per_row, self._built = weight, positions, per_row, {}

    def get(self, h: Tensor, transpose: bool = False) -> Optional[Tensor]:
        if h.dtype not in (torch.float32, torch.float64) or h.device.type not in ("cpu", "cuda"):
            return None
        weight = self._weight
        if weight.requires_grad and torch.is_grad_enabled():
            return None
        if (h.dtype, transpose) not in self._built:
            rows, cols, size = self._positions()
            values = weight.detach().to(h.dtype)
            if transpose:
                rows, cols = cols, rows
            with warnings.catch_warnings():  # "CSR support is in beta": the product used here is tested
                warnings.simplefilter("ignore", UserWarning)
                if self._per_row and not transpose:
                    cols, order = cols.view(size, self._per_row).sort(dim=1)
                    crow = torch.arange(0, size * self._per_row + 1, self._per_row, device=cols.device)
                    values = values.view(size, self._per_row).gather(1, order)
                    built = torch.sparse_csr_tensor(crow, cols.reshape(-1), values.reshape(-1), (size, size),
                                                    check_invariants=False)
                else:
                    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (size, size), check_invariants=False)
                    built = coo.coalesce().to_sparse_csr()
                self._built[h.dtype, transpose] = built
        return self._built[h.dtype, transpose]

    def transposed(self, h: Tensor) -> "_LazyTranspose":
        return _LazyTranspose(self, h)


class _LazyTranspose:
    """P^T, built only if a backward pass asks for it (sampling never does), then kept for every iteration."""

    def __init__(self, cache: CSRCache, h: Tensor):
        self.cache, self.dtype_of = cache, h.detach()

    def get(self) -> Tensor:
        return self.cache.get(self.dtype_of, transpose=True)


def product(csr: Tensor, h: Tensor, alpha: float = 1.0) -> Tensor:
    """alpha * P @ H. As addmm with beta 0 (H passed as the ignored input): torch.sparse.mm zero-fills a new
    output first, which measured 2.0-2.8 ms against 0.8 ms at N = 1024 x 4 heads x batch 2, d 64, 2 CPU cores."""
    return torch.sparse.addmm(h, csr, h, beta=0.0, alpha=alpha)


class SparseProduct(torch.autograd.Function):
    """P @ H for a CSR P that needs no gradient, whose backward is P^T @ grad with P^T built once per forward
    pass (torch's own backward of the CSR product re-transposes P on every call: a sort per iteration)."""

    @staticmethod
    def forward(ctx, h: Tensor, csr: Tensor, transposed: _LazyTranspose) -> Tensor:
        ctx.transposed = transposed
        return product(csr, h)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        return product(ctx.transposed.get(), grad), None, None


class SparseStep(torch.autograd.Function):
    """One diffusion step, source + alpha * P @ H, as a single sparse addmm: measured at N = 1024 (8 entries
    a row, 4 heads, batch 2, d 64, 2 CPU cores) 0.9 ms against 4.2 ms for the product, the scaling and the sum
    done apart. Backward: the gradient itself to source, alpha * P^T @ grad to H."""

    @staticmethod
    def forward(ctx, source: Tensor, h: Tensor, csr: Tensor, transposed: _LazyTranspose, alpha: float) -> Tensor:
        ctx.transposed, ctx.alpha = transposed, alpha
        return torch.sparse.addmm(source, csr, h, beta=1.0, alpha=alpha)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        return grad, product(ctx.transposed.get(), grad, ctx.alpha), None, None, None


def csr_product(cache: CSRCache, h: Tensor) -> Optional[Tensor]:
    """P @ H for H of shape [..., d], or None where P is not available as CSR (see CSRCache.get)."""
    csr = cache.get(h)
    if csr is None:
        return None
    return SparseProduct.apply(h.reshape(-1, h.shape[-1]), csr, cache.transposed(h)).view(h.shape)


def csr_step(cache: CSRCache, source: Tensor, alpha, h: Tensor) -> Optional[Tensor]:
    """source + alpha * P @ H fused, for H and source of one shape [..., d]; None where it does not apply:
    P not available as CSR (see CSRCache.get), or alpha a tensor that needs a gradient or lives off the CPU
    (a learnable alpha's gradient needs P @ H itself; reading a GPU number would wait for the device)."""
    if isinstance(alpha, Tensor):
        if alpha.dim() > 0 or alpha.requires_grad or alpha.device.type != "cpu":
            return None
    alpha = float(alpha)
    if source.shape != h.shape:
        return None
    csr = cache.get(h)
    if csr is None:
        return None
    width = h.shape[-1]
    stepped = SparseStep.apply(source.reshape(-1, width), h.reshape(-1, width), csr, cache.transposed(h), alpha)
    return stepped.view(h.shape)
