"""What attention does with its weights, measured on a few query rows: the entropy of the softmax weights p0 and of
QGFD's effective weights p_T, the mass of the five largest weights, and the largest logit |q.k| / sqrt(d).

Why these: attention-entropy collapse (weights going one-hot) coincides with divergence in transformers (Zhai et
al. 2023), and attention-logit growth is the instability small models show at high learning rates (Wortsman et
al. 2023). QGFD's p_T = (1 - a) sum_t a^t p0 P^t + a^T p0 P^T keeps spreading over the key graph when p0 is
one-hot, an entropy floor plain attention lacks; measuring p0 and p_T side by side shows whether it matters.
The fast operator never forms p_T; these statistics do, on a handful of rows, so they stay cheap.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor

from .transitions import Transition, as_transition


def entropy(weights: Tensor) -> Tensor:
    """Shannon entropy (nats) of each row of non-negative weights summing to 1 (0 log 0 = 0).

    Example:
        >>> round(float(entropy(torch.full((4,), 0.25))), 4)  # log 4
        1.3863
    """
    return -torch.special.xlogy(weights, weights).sum(-1)


def effective_weights(p0: Tensor, matrix: Tensor, alpha: Union[float, Tensor], iterations: int) -> Tensor:
    """p_T of the seed recursion p_{t+1} = (1 - a) p0 + a p_t P, from p0 [..., Lq, N] and a dense P [..., N, N].

    Example:
        >>> P = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
        >>> effective_weights(torch.tensor([[1.0, 0.0]]), P, 0.5, 1)
        tensor([[0.7500, 0.2500]])
    """
    weights = p0
    for _ in range(iterations):
        weights = (1 - alpha) * p0 + alpha * (weights @ matrix)
    return weights


def _alpha_for(alpha: Union[float, Tensor], batch: int, samples: int, heads: int) -> Union[float, Tensor]:
    """alpha as [samples, heads | 1, 1, 1] for the sampled batch rows (a float stays a float)."""
    if not isinstance(alpha, Tensor):
        return float(alpha)
    alpha = alpha.detach().float()
    if alpha.ndim == 0:
        return alpha
    if alpha.ndim == 1:  # [H]
        return alpha.reshape(1, -1, 1, 1)
    return alpha.reshape(batch, -1)[:samples].reshape(samples, -1, 1, 1)  # [B, H] or [B, 1]


@torch.no_grad()
def attention_statistics(q: Tensor, k: Tensor, transition: Union[Transition, Tensor, None],
                         alpha: Union[float, Tensor] = 0.0, iterations: int = 0,
                         key_padding_mask: Optional[Tensor] = None, attn_bias: Optional[Tensor] = None,
                         rows: int = 8, samples: int = 2) -> dict[str, float]:
    """The attention statistics of the first `rows` queries of the first `samples` batch elements.

    Args:
        q: queries [B, H, Lq, d].
        k: keys [B, H, N, d].
        transition: QGFD's transition (a `Transition` or a dense row-stochastic tensor); None for plain attention.
        alpha: QGFD's weight (a float, or a tensor of shape [], [H], [B, H] or [B, 1]); 0 for plain attention.
        iterations: QGFD's T.
        key_padding_mask: [B, N], True for a padded key (left out of every statistic).
        attn_bias: an additive score bias broadcastable to [B, H, Lq, N].
        rows: query rows measured per sample.
        samples: batch elements measured.

    Returns:
        ``entropy_p0`` and ``entropy_pT`` (mean over rows and heads, nats), ``top5_pT`` (mean mass of the five
        largest effective weights) and ``max_logit`` (the largest |q.k| / sqrt(d) over rows, heads and keys).

    Example:
        >>> from qgfd_gen.transitions import GridTransition
        >>> q, k = torch.zeros(2, 1, 1, 4, 2).unbind(0)  # uniform attention over a 2x2 grid
        >>> stats = attention_statistics(q, k, GridTransition(2, 2), alpha=0.5, iterations=2)
        >>> round(stats["entropy_p0"], 4), round(stats["entropy_pT"], 4), stats["max_logit"]
        (1.3863, 1.3863, 0.0)
    """
    batch = q.shape[0]
    samples = min(samples, batch)
    keys = k.float()  # the whole batch: a transition built from the data (a batch of graphs) binds to all of it
    q, k = q[:samples, :, :rows].float(), keys[:samples]
    mask = None if key_padding_mask is None else key_padding_mask[:samples]
    raw = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [S, H, rows, N]
    logits = raw
    if attn_bias is not None:
        bias = attn_bias.float()
        bias = bias[:samples] if bias.ndim == 4 and bias.shape[0] == batch else bias
        logits = logits + bias[..., : raw.shape[-2], :]
    if mask is not None:
        logits = logits.masked_fill(mask[:, None, None, :], float("-inf"))
        raw = raw.masked_fill(mask[:, None, None, :], 0.0)
    p0 = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # a sample with every key padded: zeros
    alpha_rows = _alpha_for(alpha, batch, samples, q.shape[1])
    no_diffusion = iterations == 0 or transition is None or (not isinstance(alpha_rows, Tensor) and alpha_rows == 0)
    if no_diffusion:
        p_t = p0
    else:
        matrix = as_transition(transition).bind(keys, key_padding_mask).to_dense().float()
        if matrix.ndim == 3 and matrix.shape[0] == batch:  # [B, N, N]: per sample
            matrix = matrix[:samples, None]
        elif matrix.ndim == 4 and matrix.shape[0] == batch:
            matrix = matrix[:samples]
        p_t = effective_weights(p0, matrix, alpha_rows, iterations)
    top = min(5, p_t.shape[-1])
    return {"entropy_p0": float(entropy(p0).mean()), "entropy_pT": float(entropy(p_t).mean()),
            "top5_pT": float(p_t.topk(top, dim=-1).values.sum(-1).mean()), "max_logit": float(raw.abs().amax())}
