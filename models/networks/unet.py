"""The image denoiser: a diffusers UNet2DModel from explicit config, its attention vanilla or QGFD."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from diffusers import UNet2DModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from qgfd_gen.attention import QGFDConfig
from qgfd_gen.config import coerce_config
from qgfd_gen.processor import QGFDAttnProcessor, attention_modules, set_qgfd_processors
from qgfd_gen.spectral import SigmaReparamLinear, check_spectral, qk_layer_norm

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


@dataclass
class UNetConfig:
    """The U-Net's architecture. The defaults are DDPM's CIFAR-10 U-Net (35.7M parameters): channels
    128 x (1, 2, 2, 2), 2 res blocks per level, attention at 16x16 and in the middle block, dropout 0.1.
    `attention_head_dim=None` keeps one head per attention block, as the DDPM U-Net has.
    attention: vanilla | qgfd. attention_block: attention (diffusers' attention blocks) | transformer
    (attention + feed-forward, `SpatialTransformer`)."""

    sample_size: int = 32
    in_channels: int = 3
    block_out_channels: list[int] = field(default_factory=lambda: [128, 256, 256, 256])
    down_block_types: list[str] = field(default_factory=lambda: ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"])
    up_block_types: list[str] = field(default_factory=lambda: ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"])
    layers_per_block: int = 2
    attention_head_dim: Optional[int] = None
    norm_num_groups: int = 32
    dropout: float = 0.1
    attention: str = "qgfd"
    attention_block: str = "attention"
    qk_norm: bool = False  # LayerNorm on each head's queries and keys (QK-norm), in every attention module
    spectral: str = "none"  # sigmaReparam on the attention projections: none | qk | all (qgfd_gen.spectral)

    def __post_init__(self) -> None:
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention={self.attention!r}; choose one of {', '.join(ATTENTIONS)}")
        check_spectral(self.spectral)
        if self.attention_block not in ATTENTION_BLOCKS:
            raise ValueError(f"attention_block={self.attention_block!r}; choose one of {', '.join(ATTENTION_BLOCKS)}")
        levels = len(self.block_out_channels)
        if len(self.down_block_types) != levels or len(self.up_block_types) != levels:
            raise ValueError(
                f"block_out_channels has {levels} levels but down_block_types has "
                f"{len(self.down_block_types)} and up_block_types {len(self.up_block_types)}; they must match"
            )
        self.block_out_channels, self.down_block_types = list(self.block_out_channels), list(self.down_block_types)
        self.up_block_types = list(self.up_block_types)

    @classmethod
    def coerce(cls, value: "UNetConfig | dict | None") -> "UNetConfig":
        return coerce_config(cls, value, "unet")


def build_unet(config: UNetConfig, qgfd: Optional[QGFDConfig] = None) -> UNet2DModel:
    """UNet2DModel from the config, with QGFD processors on every attention module when
    config.attention == 'qgfd' (QGFD's settings from `qgfd`)."""
    unet = UNet2DModel(
        sample_size=config.sample_size,
        in_channels=config.in_channels,
        out_channels=config.in_channels,
        block_out_channels=tuple(config.block_out_channels),
        down_block_types=tuple(config.down_block_types),
        up_block_types=tuple(config.up_block_types),
        layers_per_block=config.layers_per_block,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
        dropout=config.dropout,
        add_attention=True,
    )
    if config.attention_block == "transformer":
        use_transformer_blocks(unet, config.norm_num_groups, config.dropout)
    if config.attention == "qgfd":
        set_qgfd_processors(unet, qgfd or QGFDConfig())
    if config.qk_norm or config.spectral != "none":
        stabilise_attention(unet, config.qk_norm, config.spectral)
    return unet


def stabilise_attention(unet: nn.Module, qk_norm: bool, spectral: str) -> None:
    """QK-norm and sigmaReparam on every diffusers `Attention` module of the U-Net. Both processors (diffusers'
    own for vanilla attention, QGFD's) apply `norm_q` / `norm_k` to each head's queries and keys and call
    `to_q`, `to_k`, `to_v` and `to_out[0]`, so the switches work for either."""
    for attn in attention_modules(unet):
        dim_head = attn.to_q.out_features // attn.heads
        if qk_norm:
            attn.norm_q, attn.norm_k = qk_layer_norm(dim_head), qk_layer_norm(dim_head)
        if spectral != "none":
            attn.to_q = SigmaReparamLinear.from_linear(attn.to_q)
            attn.to_k = SigmaReparamLinear.from_linear(attn.to_k)
        if spectral == "all":
            attn.to_v = SigmaReparamLinear.from_linear(attn.to_v)
            attn.to_out[0] = SigmaReparamLinear.from_linear(attn.to_out[0])
