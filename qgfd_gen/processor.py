"""QGFD inside diffusers: an attention processor for `diffusers.models.attention_processor.Attention`.

diffusers' UNet2DModel has no `set_attn_processor`, so `set_qgfd_processors` walks the model and calls
`set_processor` on every `Attention` module, giving each its layer index (for damped alpha). The
processor is an nn.Module so that a learnable alpha is saved with the model's state dict.
"""

from __future__ import annotations

import math
from typing import Optional

from torch import Tensor, nn

from .attention import LayerAlpha, QGFDConfig, make_transition
from .operator import QGFDStats, qgfd_attention


class QGFDAttnProcessor(nn.Module):
    """Self-attention through QGFD. 4D inputs [B, C, H, W] give the grid size; 3D inputs [B, N, C] use
    `grid_shape` when set, else a square grid when N is a square. Cross-attention (encoder states) has
    no graph over its keys in this workbench and raises, as does an attention mask."""

    def __init__(self, config: QGFDConfig, layer_index: int = 0, grid_shape: Optional[tuple[int, int]] = None):
        super().__init__()
        self.config = config
        self.layer_index = layer_index
        self.grid_shape = grid_shape
        self.alpha = LayerAlpha(config, layer_index)
        self.last_stats: Optional[QGFDStats] = None
        self.traces: Optional[list[Tensor]] = None  # a list while tracing: each call's residuals (see trace_qgfd)

    def _grid_shape(self, n: int, spatial: Optional[tuple[int, int]]) -> Optional[tuple[int, int]]:
        if spatial is not None:
            return spatial
        if self.grid_shape is not None:
            return self.grid_shape
        side = math.isqrt(n)
        if self.config.transition == "grid" and side * side != n:
            raise ValueError(f"grid transition on a token sequence of length {n}: not square; set grid_shape=(H, W)")
        return (side, side)

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None, temb: Optional[Tensor] = None, *args, **kwargs) -> Tensor:
        if encoder_hidden_states is not None:
            raise NotImplementedError("QGFDAttnProcessor handles self-attention only; keep the stock processor for cross-attention")
        if attention_mask is not None:
            raise NotImplementedError("QGFDAttnProcessor takes no attention_mask (images have no padded pixels)")
        residual = hidden_states
        query, key, value, spatial = project_qkv(attn, hidden_states, temb)
        b, _, n, _ = query.shape
        transition = make_transition(self.config, self._grid_shape(n, spatial))
        out, self.last_stats = qgfd_attention(
            query, key, value, transition, alpha=self.alpha(), iterations=self.config.iterations, tol=self.config.tol,
            return_stats=True, trace=self.traces is not None,
        )
        if self.traces is not None:
            self.traces.append(self.last_stats.trace)
        out = out.transpose(1, 2).reshape(b, n, -1).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if spatial is not None:
            out = out.transpose(1, 2).reshape(b, -1, *spatial)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def project_qkv(attn, hidden_states: Tensor, temb: Optional[Tensor] = None
                ) -> tuple[Tensor, Tensor, Tensor, Optional[tuple[int, int]]]:
    """What a diffusers `Attention` does before its attention: spatial and group norms, the q, k, v projections
    split into heads [B, heads, N, dim_head], QK-norm. Returns q, k, v and the feature map's (H, W) (None for a
    token sequence). Shared by the QGFD processor and the attention statistics, so both see the same q and k."""
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    spatial = None
    if hidden_states.ndim == 4:
        _, _, height, width = hidden_states.shape
        spatial = (height, width)
        hidden_states = hidden_states.flatten(2).transpose(1, 2)
    b, n, _ = hidden_states.shape
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

    def heads(x: Tensor) -> Tensor:
        return x.view(b, n, attn.heads, -1).transpose(1, 2)

    query, key, value = heads(attn.to_q(hidden_states)), heads(attn.to_k(hidden_states)), heads(attn.to_v(hidden_states))
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    return query, key, value, spatial


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every diffusers `Attention` module of a model, in module order."""
    from diffusers.models.attention_processor import Attention

    return [m for m in model.modules() if isinstance(m, Attention)]


def set_qgfd_processors(model: nn.Module, config: QGFDConfig) -> list[QGFDAttnProcessor]:
    """Puts a QGFD processor on every self-attention module of a diffusers model (cross-attention is left alone).

    Args:
        model: a diffusers model (a `UNet2DModel`, say) with `Attention` modules.
        config: QGFD's settings, one per model; each processor gets its layer index for damped alphas.

    Returns:
        The processors, in the order of the modules.

    Raises:
        ValueError: the model has no self-attention module.

    Example:
        >>> from diffusers import UNet2DModel
        >>> from qgfd_gen.attention import QGFDConfig
        >>> unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32),
        ...                    down_block_types=("AttnDownBlock2D", "DownBlock2D"),
        ...                    up_block_types=("UpBlock2D", "AttnUpBlock2D"), layers_per_block=1, norm_num_groups=8)
        >>> len(set_qgfd_processors(unet, QGFDConfig(alpha=0.5, iterations=2, transition="grid")))  # 1 down, 2 up (layers_per_block + 1), 1 middle
        4
    """
    processors = []
    for index, module in enumerate(m for m in attention_modules(model) if not m.is_cross_attention):
        processor = QGFDAttnProcessor(config, layer_index=index)
        module.set_processor(processor)
        processors.append(processor)
    if not processors:
        raise ValueError(f"{type(model).__name__} has no self-attention modules to give QGFD")
    return processors
