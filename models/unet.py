"""The image denoiser: a diffusers UNet2DModel from explicit config, its attention vanilla or QGFD."""

from __future__ import annotations

from typing import Optional

from diffusers import UNet2DModel

from qgfd_gen.attention import QGFDConfig
from qgfd_gen.processor import set_qgfd_processors

ATTENTIONS = ("vanilla", "qgfd")


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
) -> UNet2DModel:
    """UNet2DModel with QGFD processors on every attention module when attention == 'qgfd'.
    `attention_head_dim=None` keeps one head per attention block, as the DDPM U-Net has."""
    if attention not in ATTENTIONS:
        raise ValueError(f"attention={attention!r}; choose one of {', '.join(ATTENTIONS)}")
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
    if attention == "qgfd":
        set_qgfd_processors(unet, qgfd or QGFDConfig())
    return unet
