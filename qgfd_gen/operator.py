"""The QGFD operator.

Seed definition, per query row:  p0 = softmax(q k^T / sqrt d),  p_{t+1} = (1 - a) p0 + a p_t P,  out = p_T v.

Because p_T = p0 M_T with M_T a polynomial in P, the same output comes from diffusing the *values*:
    H_0 = v,  H_{t+1} = (1 - a) v + a P H_t,  out = softmax(q k^T / sqrt d) H_T
which costs T products P @ H (never Lq x N x N) and ends in one fused scaled_dot_product_attention.
`qgfd_attention` is that fast form; `qgfd_reference` is the seed formula, kept for tests and benchmarks.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .transitions import Transition, TransitionOperator, as_transition

Alpha = Union[float, Tensor]


@dataclass
class QGFDStats:
    """What the diffusion loop did, per batch element: iterations used and the last residual max|H_{t+1} - H_t|;
    with trace=True also the residual of every iteration (max over the batch), to see how fast H settles."""

    iterations_used: Tensor  # [B] long
    residual: Tensor  # [B], NaN where no iteration ran
    trace: Optional[Tensor] = None  # [iterations run], with trace=True


def check_alpha(alpha: Alpha) -> None:
    if isinstance(alpha, Tensor):
        if alpha.requires_grad or alpha.numel() == 0:
            return  # learnable alphas are kept in range by their parametrisation
        if bool(torch.isnan(alpha).any()):
            raise ValueError(f"alpha={alpha.tolist() if alpha.numel() < 8 else 'tensor'} holds NaN; need 0 <= alpha < 1")
        lo, hi = float(alpha.min()), float(alpha.max())
        if lo < 0 or hi >= 1:
            raise ValueError(f"alpha={alpha.tolist() if alpha.numel() < 8 else (lo, hi)} is outside [0, 1); need 0 <= alpha < 1")
        return
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= float(alpha) < 1:
        raise ValueError(f"alpha={alpha!r} is outside [0, 1); need 0 <= alpha < 1")


def check_iterations(iterations) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
        raise ValueError(f"iterations={iterations!r}; need a non-negative integer (QGFD diffusion iterations)")


def check_tol(tol) -> None:
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol > 0):
        raise ValueError(f"tol={tol!r}; need a positive number (or None for no early stopping)")


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Optional[Tensor]) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"q, k, v must be [B, H, L, d]; got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must agree on [B, H, N]")
    if q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree on B, H and d")
    if k.shape[2] == 0:
        raise ValueError("k and v hold no keys (N = 0); QGFD needs at least one key to attend to")
    if not (q.is_floating_point() and k.is_floating_point() and v.is_floating_point()):
        raise ValueError(f"q, k, v must be floating point; got {q.dtype}, {k.dtype}, {v.dtype}")
    if key_padding_mask is not None:
        if key_padding_mask.shape != (k.shape[0], k.shape[2]) or key_padding_mask.dtype != torch.bool:
            raise ValueError(
                f"key_padding_mask must be a bool tensor [B={k.shape[0]}, N={k.shape[2]}] (True = padded), "
                f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
            )


def _check_alpha_shape(alpha: Alpha, heads: int, batch: int) -> None:
    if not isinstance(alpha, Tensor) or alpha.dim() == 0:
        return
    if alpha.dim() == 1 and alpha.numel() in (1, heads):
        return
    if alpha.dim() == 2 and alpha.shape[0] in (1, batch) and alpha.shape[1] in (1, heads):
        return
    raise ValueError(f"alpha has shape {tuple(alpha.shape)}; a tensor alpha is a scalar, one value per head [{heads}], "
                     f"or one per sample and head [{batch} or 1, {heads} or 1]")


def _unpadded(key_padding_mask: Optional[Tensor]) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """A sample whose keys are all padded has nothing to attend to; its output is defined as zeros. It runs
    unmasked (so no NaN arises anywhere, gradients included) and is zeroed at the end."""
    if key_padding_mask is None:
        return None, None
    empty = key_padding_mask.all(1)
    return key_padding_mask & ~empty[:, None], empty[:, None, None, None]


def _alpha_for(alpha: Alpha, like: Tensor) -> Alpha:
    """A tensor alpha of shape [], [heads] or [B, heads] broadcast against [B, heads, ...] in `like`'s layout."""
    if not isinstance(alpha, Tensor) or alpha.dim() == 0:
        return alpha
    if alpha.dim() == 2:
        return alpha.reshape(alpha.shape[0], alpha.shape[1], *([1] * (like.dim() - 2)))
    return alpha.reshape(1, -1, *([1] * (like.dim() - 2)))


def _is_zero(alpha: Alpha) -> bool:
    return (not isinstance(alpha, Tensor)) and float(alpha) == 0.0


def _no_diffusion_stats(v: Tensor, trace: bool) -> QGFDStats:
    b = v.shape[0]
    return QGFDStats(torch.zeros(b, dtype=torch.long, device=v.device),
                     torch.full((b,), float("nan"), dtype=v.dtype, device=v.device), v.new_zeros(0) if trace else None)


def diffuse_values(
    v: Tensor,
    operator: TransitionOperator,
    *,
    alpha: Alpha,
    iterations: int,
    tol: Optional[float] = None,
    trace: bool = False,
) -> tuple[Tensor, QGFDStats]:
    """H_T from H_0 = v, H_{t+1} = (1 - a) v + a P H_t. With tol, a sample freezes once its residual
    max |H_{t+1} - H_t| drops below tol (the iteration that got there is kept). trace=True records every
    iteration's residual (one extra reduction per iteration; off by default)."""
    b = v.shape[0]
    if iterations == 0 or _is_zero(alpha):
        return v, _no_diffusion_stats(v, trace)
    iterations_used = torch.zeros(b, dtype=torch.long, device=v.device)
    residual = torch.full((b,), float("nan"), dtype=v.dtype, device=v.device)
    a = alpha if isinstance(alpha, Tensor) and alpha.dim() == 0 else _alpha_for(alpha, v)
    if tol is None and not trace:
        closed = operator.diffuse_in_closed_form(v, a, iterations)
        if closed is not None:
            h, last_step = closed
            return h, QGFDStats(iterations_used + iterations, last_step.abs().flatten(1).amax(1))
    v_native = operator.to_native(v)
    if isinstance(a, Tensor) and a.dim() > 0:
        a = operator.to_native(a.expand(v.shape))
    source = (1 - a) * v_native
    h = v_native
    active = torch.ones(b, dtype=torch.bool, device=v.device)
    history: list[Tensor] = []
    for iteration in range(iterations):
        h_next = operator.step_native(source, a, h)
        if trace:
            history.append((h_next - h).detach().abs().amax())
        if tol is None:  # fixed number of iterations: only the last residual is worth a pass over H
            if iteration == iterations - 1:
                residual = (h_next - h).detach().abs().flatten(1).amax(1)
            h = h_next
            iterations_used += 1
            continue
        step_residual = (h_next - h).detach().abs().flatten(1).amax(1)
        mask = active.view(b, *([1] * (h.dim() - 1)))
        h = torch.where(mask, h_next, h)
        iterations_used += active.long()
        residual = torch.where(active, step_residual, residual)
        active = active & (step_residual >= tol)
        if not bool(active.any()):
            break
    traced = torch.stack(history) if trace else None
    return operator.from_native(h), QGFDStats(iterations_used, residual, traced)


def qgfd_attention(q: Tensor, k: Tensor, v: Tensor, transition: Union[Transition, Tensor], *, alpha: Alpha,
                   iterations: int, tol: Optional[float] = None, key_padding_mask: Optional[Tensor] = None,
                   attn_bias: Optional[Tensor] = None, return_stats: bool = False,
                   trace: bool = False) -> Union[Tensor, tuple[Tensor, "QGFDStats"]]:
    """QGFD attention in its fast exact form: the values diffuse over the key graph, then one fused SDPA.

    With p0 = softmax(q k^T / sqrt d + bias) and p_{t+1} = (1 - a) p0 + a p_t P, the output p_T v equals
    softmax(q k^T / sqrt d + bias) H_T with H_0 = v, H_{t+1} = (1 - a) v + a P H_t, exactly, for every T. Why:
    the [Lq, N] weights are never formed, so the fused attention kernels apply and memory stays that of SDPA.

    Args:
        q: queries [B, H, Lq, d].
        k: keys [B, H, N, d].
        v: values [B, H, N, d_v].
        transition: a `Transition` (grid, adjacency, knn, dense) or a dense row-stochastic tensor [N, N],
            [B, N, N] or [B, H, N, N].
        alpha: QGFD's weight a in [0, 1): a float, or a tensor of shape [], [H] or [B, H]. 0 is plain attention.
        iterations: T >= 0 diffusion iterations. 0 is plain attention.
        tol: when given (> 0), each sample stops once max |H_{t+1} - H_t| < tol (at most `iterations`).
        key_padding_mask: [B, N] bool, True for a padded key: kept out of the attention and the diffusion. A
            sample whose keys are all padded gets zeros.
        attn_bias: an additive score bias broadcastable to [B, H, Lq, N] (edge features, say).
        return_stats: also return a `QGFDStats` (iterations used and final residual per sample).
        trace: with return_stats, keep every iteration's residual in the stats.

    Returns:
        out [B, H, Lq, d_v], or (out, stats) with return_stats=True.

    Raises:
        ValueError: alpha outside [0, 1), negative iterations, a non-positive tol, or shapes that do not match,
            each named.

    Example:
        >>> import torch
        >>> from qgfd_gen import GridTransition, qgfd_attention, qgfd_reference
        >>> q, k, v = torch.randn(3, 2, 2, 16, 8, generator=torch.Generator().manual_seed(0)).unbind(0)
        >>> out = qgfd_attention(q, k, v, GridTransition(4, 4), alpha=0.5, iterations=3)
        >>> out.shape
        torch.Size([2, 2, 16, 8])
        >>> torch.allclose(out, qgfd_reference(q, k, v, GridTransition(4, 4), alpha=0.5, iterations=3), atol=1e-5)
        True
        >>> plain = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        >>> torch.allclose(qgfd_attention(q, k, v, GridTransition(4, 4), alpha=0.0, iterations=3), plain)
        True
    """
    check_alpha(alpha)
    check_iterations(iterations)
    check_tol(tol)
    _check_qkv(q, k, v, key_padding_mask)
    _check_alpha_shape(alpha, q.shape[1], q.shape[0])
    key_padding_mask, empty = _unpadded(key_padding_mask)
    transition = as_transition(transition)
    if iterations == 0 or _is_zero(alpha):  # plain attention: no graph to build (a knn graph costs a top-k)
        h, stats = v, _no_diffusion_stats(v, trace)
    else:
        h, stats = diffuse_values(v, transition.bind(k, key_padding_mask), alpha=alpha, iterations=iterations, tol=tol,
                                  trace=trace)
    out = F.scaled_dot_product_attention(q, k, h, attn_mask=_attention_mask(key_padding_mask, attn_bias, q.dtype))
    out = out if empty is None else out.masked_fill(empty, 0.0)
    return (out, stats) if return_stats else out


def _attention_mask(key_padding_mask: Optional[Tensor], attn_bias: Optional[Tensor], dtype) -> Optional[Tensor]:
    if attn_bias is None:
        return None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
    bias = attn_bias.to(dtype)
    if key_padding_mask is not None:
        bias = bias.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    return bias


def qgfd_reference(q: Tensor, k: Tensor, v: Tensor, transition: Union[Transition, Tensor], *, alpha: Alpha,
                   iterations: int, key_padding_mask: Optional[Tensor] = None,
                   attn_bias: Optional[Tensor] = None) -> Tensor:
    """The seed formula, literally: p_{t+1} = (1 - a) p0 + a p_t P on the [Lq, N] weights, then p_T v.

    O(T Lq N^2) time and an [Lq, N] matrix per head: kept as the reference that tests and benchmarks hold the
    fast form (`qgfd_attention`) to. Takes the same arguments as `qgfd_attention` (no early stopping).

    Returns:
        out [B, H, Lq, d_v].
    """
    check_alpha(alpha)
    check_iterations(iterations)
    _check_qkv(q, k, v, key_padding_mask)
    _check_alpha_shape(alpha, q.shape[1], q.shape[0])
    key_padding_mask, empty = _unpadded(key_padding_mask)
    matrix = as_transition(transition).bind(k, key_padding_mask).to_dense().to(q.dtype)
    scores = torch.matmul(q, k.transpose(-1, -2)) / k.shape[-1] ** 0.5
    if attn_bias is not None:
        scores = scores + attn_bias
    if key_padding_mask is not None:
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    p0 = torch.softmax(scores, dim=-1)
    a = _alpha_for(alpha, p0)
    p = p0
    for _ in range(iterations):
        p = (1 - a) * p0 + a * torch.matmul(p, matrix)
    out = torch.matmul(p, v)
    return out if empty is None else out.masked_fill(empty, 0.0)


def qgfd_fixed_point(q: Tensor, k: Tensor, v: Tensor, transition, *, alpha: float) -> Tensor:
    """The T -> infinity limit of QGFD (personalised PageRank): (1 - a) p0 (I - a P)^-1 v.

    Solves an N x N system, so it is for small N: the value that `qgfd_attention` approaches like a^T.

    Args:
        q: queries [B, H, Lq, d].
        k: keys [B, H, N, d].
        v: values [B, H, N, d_v].
        transition (Transition | Tensor): a `Transition` or a dense row-stochastic tensor.
        alpha: a in [0, 1).

    Returns:
        out [B, H, Lq, d_v].

    Example:
        >>> import torch
        >>> from qgfd_gen import DenseTransition, qgfd_attention, qgfd_fixed_point
        >>> q, k, v = torch.randn(3, 1, 2, 10, 4, generator=torch.Generator().manual_seed(1)).unbind(0)
        >>> far = qgfd_attention(q, k, v, DenseTransition(), alpha=0.5, iterations=60)
        >>> torch.allclose(far, qgfd_fixed_point(q, k, v, DenseTransition(), alpha=0.5), atol=1e-5)
        True
    """
    check_alpha(alpha)
    matrix = as_transition(transition).bind(k).to_dense().to(q.dtype)
    eye = torch.eye(k.shape[2], dtype=q.dtype, device=q.device)
    h = (1 - alpha) * torch.linalg.solve(eye - alpha * matrix, v)  # solve broadcasts [B|1, H|1] over v
    return F.scaled_dot_product_attention(q, k, h)
