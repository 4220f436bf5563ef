"""QGFD as building blocks: its configuration, a per-layer alpha, and a multi-head attention module."""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, replace
from typing import Iterator, Optional

import torch
from einops import rearrange
from torch import Tensor, nn

from .config import coerce_config
from .operator import QGFDStats, check_alpha, check_iterations, check_tol, qgfd_attention
from .spectral import SigmaReparamLinear, check_spectral, qk_layer_norm
from .transitions import DenseTransition, GridTransition, KNNTransition, Transition

TRANSITIONS = ("grid", "knn", "dense", "adjacency")
ALPHA_MODES = ("fixed", "learnable", "damped")


@dataclass
class QGFDConfig:
    """Everything QGFD needs besides the tensors. alpha is QGFD's mixing weight (0 = plain attention),
    iterations the number of diffusion iterations over the key graph (tol > 0 stops each sample once
    an iteration moves H by less than tol). alpha_mode: fixed (alpha everywhere), learnable (alpha
    through a sigmoid, starting at alpha), damped (alpha * gamma**layer_index)."""

    alpha: float = 0.5
    iterations: int = 4
    tol: Optional[float] = None
    transition: str = "grid"
    neighbours: int = 8
    knn_k: int = 8
    knn_grad: bool = False
    alpha_mode: str = "fixed"
    gamma: float = 0.8

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        check_iterations(self.iterations)
        check_tol(self.tol)
        if self.transition not in TRANSITIONS:
            raise ValueError(f"transition={self.transition!r}; choose one of {', '.join(TRANSITIONS)}")
        if self.alpha_mode not in ALPHA_MODES:
            raise ValueError(f"alpha_mode={self.alpha_mode!r}; choose one of {', '.join(ALPHA_MODES)}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma={self.gamma!r}; the damping factor must be in (0, 1]")
        if self.neighbours not in (4, 8):
            raise ValueError(f"neighbours={self.neighbours!r}; use 4 or 8")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def coerce(cls, value: "QGFDConfig | dict | None", **defaults) -> "QGFDConfig":
        """A config from a config, a mapping (YAML, checkpoint hparams) or None (the defaults given)."""
        return coerce_config(cls, value, "qgfd", **defaults)


class LayerAlpha(nn.Module):
    """The alpha of one layer: a fixed float, a damped float a0 * gamma**l, or a learnable sigmoid(logit)."""

    def __init__(self, config: QGFDConfig, layer_index: int = 0):
        super().__init__()
        self.mode = config.alpha_mode
        if self.mode == "learnable":
            start = min(max(config.alpha, 1e-4), 1 - 1e-4)
            self.logit = nn.Parameter(torch.tensor(math.log(start / (1 - start))))
            self.value = None
        elif self.mode == "damped":
            self.value = config.alpha * config.gamma**layer_index
        else:
            self.value = config.alpha

    def forward(self) -> float | Tensor:
        return torch.sigmoid(self.logit) if self.mode == "learnable" else self.value

    def extra_repr(self) -> str:
        return f"mode={self.mode}" + ("" if self.value is None else f", alpha={self.value:.4g}")


def make_transition(config: QGFDConfig, grid_shape: Optional[tuple[int, int]] = None) -> Transition:
    """Transitions that depend on the layer input only (adjacency comes from the data, see the models)."""
    if config.transition == "grid":
        if grid_shape is None:
            raise ValueError("transition='grid' needs a feature-map shape (height, width); this input has none")
        return GridTransition(*grid_shape, neighbours=config.neighbours)
    if config.transition == "knn":
        return KNNTransition(config.knn_k, grad=config.knn_grad)
    if config.transition == "dense":
        return DenseTransition()
    raise ValueError("transition='adjacency' needs a graph: pass a Transition built from the data to forward()")


class QGFDAttention(nn.Module):
    """Multi-head self-attention with QGFD: projections, heads, and a per-layer alpha (fixed, learnable or
    damped over depth, as `config.alpha_mode` says).

    Args:
        dim: the token width.
        heads: attention heads.
        dim_head: width per head (default dim / heads).
        config: QGFD's settings (`QGFDConfig`); None: the defaults.
        layer_index: the layer's depth, for `alpha_mode: damped` (a_l = a_0 gamma^l).
        qk_norm: LayerNorm on each head's queries and keys before the dot product (QK-norm).
        spectral: sigmaReparam on the projections (`qgfd_gen.spectral`): ``none``, ``qk`` (the query and key
            blocks of the fused projection) or ``all`` (q, k, v and the output projection).

    Raises:
        ValueError: dim not divisible by heads without dim_head, or a config value out of range.

    `forward(x [B, N, dim], transition=None, key_padding_mask=None, grid_shape=None, attn_bias=None,
    alpha_scale=None)`: `transition` overrides the configured one (molecules pass their bond graph); grid_shape is
    (H, W) for the grid; attn_bias [B, heads, N, N] is added to the attention scores; alpha_scale [B] in [0, 1]
    multiplies the layer's alpha per sample (a model that knows how much its graph can be trusted).

    Example:
        >>> import torch
        >>> layer = QGFDAttention(16, heads=2, config=QGFDConfig(alpha=0.5, iterations=3, transition="grid"))
        >>> layer(torch.randn(2, 9, 16), grid_shape=(3, 3)).shape
        torch.Size([2, 9, 16])
    """

    def __init__(self, dim: int, heads: int = 4, dim_head: Optional[int] = None, config: Optional[QGFDConfig] = None,
                 layer_index: int = 0, qk_norm: bool = False, spectral: str = "none"):
        super().__init__()
        if dim % heads and dim_head is None:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}; pass dim_head")
        self.heads = heads
        self.dim_head = dim_head or dim // heads
        inner = self.heads * self.dim_head
        self.config = config or QGFDConfig()
        self.alpha = LayerAlpha(self.config, layer_index)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        if check_spectral(spectral) != "none":
            self.to_qkv = SigmaReparamLinear.from_linear(self.to_qkv, blocks=3,
                                                         reparametrised=(True, True, spectral == "all"))
            if spectral == "all":
                self.to_out = SigmaReparamLinear.from_linear(self.to_out)
        self.norm_q = qk_layer_norm(self.dim_head) if qk_norm else None
        self.norm_k = qk_layer_norm(self.dim_head) if qk_norm else None
        self.last_stats: Optional[QGFDStats] = None
        self.traces: Optional[list[Tensor]] = None  # a list while tracing: each call's residuals (see trace_qgfd)

    def forward(
        self,
        x: Tensor,
        transition: Optional[Transition] = None,
        key_padding_mask: Optional[Tensor] = None,
        grid_shape: Optional[tuple[int, int]] = None,
        attn_bias: Optional[Tensor] = None,
        alpha_scale: Optional[Tensor] = None,
    ) -> Tensor:
        q, k, v = self.project(x)
        transition = transition or make_transition(self.config, grid_shape)
        alpha = self.alpha()
        if alpha_scale is not None:  # [B, 1]: one alpha per sample, the same for every head
            alpha = torch.as_tensor(alpha, dtype=q.dtype, device=q.device).reshape(1, 1) * alpha_scale.to(q.dtype)[:, None]
        out, self.last_stats = qgfd_attention(
            q, k, v, transition, alpha=alpha, iterations=self.config.iterations, tol=self.config.tol,
            key_padding_mask=key_padding_mask, attn_bias=attn_bias, return_stats=True, trace=self.traces is not None,
        )
        if self.traces is not None:
            self.traces.append(self.last_stats.trace)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values [B, heads, N, dim_head], QK-norm applied."""
        q, k, v = rearrange(self.to_qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        if self.norm_q is not None:
            q, k = self.norm_q(q), self.norm_k(k)
        return q, k, v


OVERRIDABLE = ("iterations", "tol")


@contextlib.contextmanager
def override_qgfd(model: nn.Module, **changes) -> Iterator[int]:
    """Temporarily change how QGFD iterates (`iterations`, `tol`) in every QGFD layer of a model; yields
    how many layers. The weight alpha is part of what was trained, so it cannot be overridden here."""
    unknown = sorted(set(changes) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"override_qgfd: cannot change {unknown}; it changes only {', '.join(OVERRIDABLE)}")
    layers = qgfd_layers(model)
    saved = [m.config for m in layers]
    try:
        for m in layers:
            m.config = replace(m.config, **changes)
        yield len(layers)
    finally:
        for m, config in zip(layers, saved):
            m.config = config


def named_qgfd_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every module of a model that runs QGFD (attention modules and diffusers processors), by name."""
    return {name: m for name, m in model.named_modules() if isinstance(getattr(m, "config", None), QGFDConfig)}


def qgfd_layers(model: nn.Module) -> list[nn.Module]:
    return list(named_qgfd_layers(model).values())


@contextlib.contextmanager
def trace_qgfd(model: nn.Module) -> Iterator[dict[str, list[Tensor]]]:
    """Within the block every QGFD layer records, for each of its calls, every iteration's residual
    max|H_{t+1} - H_t| (over the batch); yields {layer name: [one tensor per call]}. Off again afterwards:
    tracing costs a reduction per iteration."""
    layers = named_qgfd_layers(model)
    for m in layers.values():
        m.traces = []
    try:
        yield {name: m.traces for name, m in layers.items()}
    finally:
        for m in layers.values():
            m.traces = None


def mean_qgfd_iterations(model: nn.Module | list[nn.Module]) -> Optional[float]:
    """Mean diffusion iterations per sample over the QGFD layers' last call (None without QGFD). Pass the
    list `qgfd_layers(model)` when asking after every call: walking the model's modules each time costs."""
    layers = model if isinstance(model, list) else qgfd_layers(model)
    used = [m.last_stats.iterations_used.float().mean() for m in layers if getattr(m, "last_stats", None) is not None]
    return float(sum(used) / len(used)) if used else None
