"""Spectral regularisation of attention projections (sigmaReparam) and QK-norm: the two stabilisers the
stability studies compare QGFD with.

sigmaReparam (Zhai et al. 2023, "Stabilizing Transformer Training by Preventing Attention Entropy Collapse")
uses every reparametrised weight W as (gamma / sigma(W)) W, where sigma(W) is W's largest singular value and
gamma a learned scalar. Why it stabilises: attention's entropy is bounded from below by a quantity that falls
exponentially with the spectral norm of the logits' matrix W_q W_k^T, and the reparametrisation keeps that norm
at what gamma learns instead of letting it drift with the raw weights. Choices made here, where the paper leaves
room: sigma(W) starts exact (an SVD at construction) and then follows W by one power-iteration step per
training forward (the singular vectors kept as buffers, no gradient through them; the gradient flows through
sigma = u^T W v, as in spectral normalisation); gamma starts at 1, so each reparametrised projection starts with
spectral norm 1; a fused projection (q, k and v in one matrix) is reparametrised block by block, each block
with its own sigma and gamma, so `q` and `k` can be reparametrised without `v`.

QK-norm (ViT-22B, Stable Diffusion 3) is a LayerNorm over each head's query and key before the dot product:
`qk_layer_norm` builds it.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SPECTRAL_MODES = ("none", "qk", "all")  # which attention projections sigmaReparam covers


def check_spectral(mode: str) -> str:
    if mode not in SPECTRAL_MODES:
        raise ValueError(f"spectral={mode!r}; choose one of {', '.join(SPECTRAL_MODES)} (none: off; qk: the query "
                         f"and key projections; all: every attention projection)")
    return mode


class SigmaReparamLinear(nn.Linear):
    """A linear layer whose weight blocks are used as (gamma_i / sigma(W_i)) W_i.

    Args:
        in_features: input width.
        out_features: output width (divisible by `blocks`).
        bias: learn an additive bias (never reparametrised).
        blocks: row blocks of the weight (3 for a fused q, k, v projection).
        reparametrised: which blocks are reparametrised (default: all).

    Example:
        >>> layer = SigmaReparamLinear(8, 6)
        >>> effective = layer.effective_weight()
        >>> round(float(torch.linalg.matrix_norm(effective.detach(), 2)), 4)
        1.0
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, blocks: int = 1,
                 reparametrised: Sequence[bool] | None = None, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        if blocks < 1 or out_features % blocks:
            raise ValueError(f"blocks={blocks!r}; need a positive divisor of out_features={out_features}")
        self.blocks = blocks
        chosen = [True] * blocks if reparametrised is None else [bool(b) for b in reparametrised]
        if len(chosen) != blocks:
            raise ValueError(f"reparametrised={reparametrised!r}; give one flag per block ({blocks})")
        self.reparametrised = chosen
        rows = out_features // blocks
        self.gamma = nn.Parameter(torch.ones(blocks))
        self.register_buffer("u", torch.zeros(blocks, rows))
        self.register_buffer("v", torch.zeros(blocks, in_features))
        self.reset_singular_vectors()

    @classmethod
    def from_linear(cls, linear: nn.Linear, blocks: int = 1, reparametrised: Sequence[bool] | None = None
                    ) -> "SigmaReparamLinear":
        """The same layer (its weight and bias copied) with sigmaReparam on the chosen blocks."""
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, blocks=blocks,
                    reparametrised=reparametrised, device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(linear.weight)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        layer.reset_singular_vectors()
        return layer

    @torch.no_grad()
    def reset_singular_vectors(self) -> None:
        """u, v: each block's leading singular vectors, exactly (an SVD): sigma starts exact."""
        for index, block in enumerate(self.weight.detach().float().chunk(self.blocks, 0)):
            u, _, vh = torch.linalg.svd(block, full_matrices=False)
            self.u[index].copy_(u[:, 0])
            self.v[index].copy_(vh[0])

    def sigmas(self) -> Tensor:
        """sigma(W_i) = u_i^T W_i v_i per block, differentiable in W (not in u, v)."""
        blocks = self.weight.chunk(self.blocks, 0)
        return torch.stack([torch.dot(self.u[i].to(w.dtype), w @ self.v[i].to(w.dtype)) for i, w in enumerate(blocks)])

    @torch.no_grad()
    def power_iteration(self) -> None:
        """One power-iteration step per block: v <- W^T u / |.|, u <- W v / |.|."""
        for index, block in enumerate(self.weight.detach().float().chunk(self.blocks, 0)):
            v = F.normalize(block.t() @ self.u[index], dim=0)
            self.u[index].copy_(F.normalize(block @ v, dim=0))
            self.v[index].copy_(v)

    def effective_weight(self) -> Tensor:
        """The weight the layer applies: reparametrised blocks scaled by gamma / sigma, the others as they are."""
        sigmas = self.sigmas()
        blocks = [w * (self.gamma[i] / sigmas[i]) if self.reparametrised[i] else w
                  for i, w in enumerate(self.weight.chunk(self.blocks, 0))]
        return torch.cat(blocks, 0)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and torch.is_grad_enabled():
            self.power_iteration()
        return F.linear(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, blocks={self.blocks}, reparametrised={self.reparametrised}"


def qk_layer_norm(dim_head: int) -> nn.LayerNorm:
    """QK-norm for one head width: LayerNorm over the head's features, with a learned scale and shift."""
    return nn.LayerNorm(dim_head, eps=1e-5)
