"""The image denoiser: a diffusers UNet2DModel from explicit config, its attention vanilla or QGFD."""

from __future__ import annotations

from typing import Optional

from diffusers import UNet2DModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from qgfd_gen.attention import QGFDConfig
from qgfd_gen.processor import QGFDAttnProcessor, set_qgfd_processors

ATTENTIONS = ("vanilla", "qgfd")
ATTENTION_BLOCKS = ("attention", "transformer")


class SpatialTransformer(nn.Module):
    """A transformer block on a feature map, standing where the U-Net had a plain attention block:
    GroupNorm, 1x1 projection, diffusers' BasicTransformerBlock (self-attention + GEGLU feed-forward),
    projection back, residual. Its self-attention takes the same processors as any diffusers Attention."""

    def __init__(self, channels: int, heads: int, head_dim: int, norm_num_groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.GroupNorm(norm_num_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, heads * head_dim)
        self.block = BasicTransformerBlock(heads * head_dim, heads, head_dim, dropout=dropout)
        self.proj_out = nn.Linear(heads * head_dim, channels)

    def forward(self, hidden_states: Tensor, temb: Optional[Tensor] = None, **kwargs) -> Tensor:
        b, c, h, w = hidden_states.shape
        processor = self.block.attn1.processor
        if isinstance(processor, QGFDAttnProcessor):
            processor.grid_shape = (h, w)  # tokens are row-major pixels of this map
        tokens = self.proj_in(self.norm(hidden_states).flatten(2).transpose(1, 2))
        tokens = self.proj_out(self.block(tokens))
        return hidden_states + tokens.transpose(1, 2).reshape(b, c, h, w)


def use_transformer_blocks(unet: UNet2DModel, norm_num_groups: int, dropout: float) -> int:
    """Replace every attention block of the U-Net by a SpatialTransformer of the same width and heads."""
    replaced = 0
    for module in list(unet.modules()):
        attentions = getattr(module, "attentions", None)
        if not isinstance(attentions, nn.ModuleList):
            continue
        for index, attn in enumerate(attentions):
            if isinstance(attn, Attention):
                channels = attn.query_dim
                attentions[index] = SpatialTransformer(channels, attn.heads, attn.inner_dim // attn.heads, norm_num_groups, dropout)
                replaced += 1
    return replaced


def build_unet(
    sample_size: int,
    in_channels: int,
    block_out_channels: list[int],
    down_block_types: list[str],
    up_block_types: list[str],
    layers_per_block: int = 2,
    attention_head_dim: Optional[int] = None,
    norm_num_groups: int = 32,
    dropout: float = 0.0,
    attention: str = "qgfd",
    qgfd: Optional[QGFDConfig] = None,
    attention_block: str = "attention",
) -> UNet2DModel:
    """UNet2DModel with QGFD processors on every attention module when attention == 'qgfd'.
    `attention_head_dim=None` keeps one head per attention block, as the DDPM U-Net has.
    attention_block='transformer' puts transformer blocks (attention + feed-forward) where the
    attention blocks were."""
    if attention not in ATTENTIONS:
        raise ValueError(f"attention={attention!r}; choose one of {', '.join(ATTENTIONS)}")
    if attention_block not in ATTENTION_BLOCKS:
        raise ValueError(f"attention_block={attention_block!r}; choose one of {', '.join(ATTENTION_BLOCKS)}")
    if len(down_block_types) != len(block_out_channels) or len(up_block_types) != len(block_out_channels):
        raise ValueError(
            f"block_out_channels has {len(block_out_channels)} levels but down_block_types has "
            f"{len(down_block_types)} and up_block_types {len(up_block_types)}; they must match"
        )
    unet = UNet2DModel(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=in_channels,
        block_out_channels=tuple(block_out_channels),
        down_block_types=tuple(down_block_types),
        up_block_types=tuple(up_block_types),
        layers_per_block=layers_per_block,
        attention_head_dim=attention_head_dim,
        norm_num_groups=norm_num_groups,
        dropout=dropout,
        add_attention=True,
    )
    if attention_block == "transformer":
        use_transformer_blocks(unet, norm_num_groups, dropout)
    if attention == "qgfd":
        set_qgfd_processors(unet, qgfd or QGFDConfig())
    return unet
