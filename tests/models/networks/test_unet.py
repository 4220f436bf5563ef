"""The image denoiser: a diffusers U-Net from UNetConfig, vanilla or QGFD, attention or transformer blocks."""

import pytest
import torch

from models.networks.unet import SpatialTransformer, UNetConfig
from qgfd_gen.attention import QGFDConfig
from qgfd_gen.processor import QGFDAttnProcessor


def test_qgfd_with_alpha_zero_equals_vanilla_on_same_weights(tiny_image_model):
    vanilla = tiny_image_model(attention="vanilla").eval()
    qgfd = tiny_image_model(qgfd=QGFDConfig(alpha=0.0, iterations=3)).eval()
    qgfd.load_state_dict(vanilla.state_dict())
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 50, 99])
    with torch.no_grad():
        assert (vanilla(x, t) - qgfd(x, t)).abs().max() < 1e-5


def test_transformer_blocks_take_the_qgfd_processor(tiny_image_model):
    vanilla = tiny_image_model(attention="vanilla", attention_block="transformer").eval()
    blocks = [m for m in vanilla.unet.modules() if isinstance(m, SpatialTransformer)]
    assert len(blocks) == 4  # down, middle, 2 x up (up blocks have layers_per_block + 1)
    qgfd0 = tiny_image_model(attention_block="transformer", qgfd=QGFDConfig(alpha=0.0, iterations=3)).eval()
    qgfd = tiny_image_model(attention_block="transformer", qgfd=QGFDConfig(alpha=0.7, iterations=3)).eval()
    qgfd0.load_state_dict(vanilla.state_dict())
    qgfd.load_state_dict(vanilla.state_dict())
    assert all(isinstance(b.block.attn1.processor, QGFDAttnProcessor)
               for b in qgfd.unet.modules() if isinstance(b, SpatialTransformer))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 70])
    with torch.no_grad():
        assert (vanilla(x, t) - qgfd0(x, t)).abs().max() < 1e-5
        assert (vanilla(x, t) - qgfd(x, t)).abs().max() > 1e-4


@pytest.mark.parametrize("kwargs, message", [
    (dict(attention_block="mlp"), "attention_block='mlp'"),
    (dict(attention="flash"), "attention='flash'"),
    (dict(block_out_channels=[16, 32, 64]), "block_out_channels has 3 levels"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNetConfig(**kwargs)


def test_default_config_is_the_ddpm_cifar10_unet():
    config = UNetConfig()
    assert config.block_out_channels == [128, 256, 256, 256] and config.layers_per_block == 2
    assert config.down_block_types[1] == "AttnDownBlock2D" and config.dropout == 0.1
