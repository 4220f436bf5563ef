"""The diffusers processor: QGFD on every self-attention module of a stock diffusers U-Net."""

import pytest
import torch

from qgfd_gen.attention import QGFDConfig, mean_qgfd_iterations
from qgfd_gen.processor import QGFDAttnProcessor, attention_modules, set_qgfd_processors


def test_processor_alpha_zero_reproduces_stock_unet(tiny_diffusers_unet):
    unet = tiny_diffusers_unet().eval()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        stock = unet(x, t).sample
        processors = set_qgfd_processors(unet, QGFDConfig(alpha=0.0, iterations=4))
        assert len(processors) == len(attention_modules(unet)) == 4  # down, mid, 2 x up
        qgfd0 = unet(x, t).sample
        set_qgfd_processors(unet, QGFDConfig(alpha=0.6, iterations=4))
        qgfd = unet(x, t).sample
    assert (stock - qgfd0).abs().max() < 1e-5
    assert (stock - qgfd).abs().max() > 1e-4  # diffusion over the grid does change the output
    assert mean_qgfd_iterations(unet) == 4.0


def test_processor_early_stopping_and_learnable_alpha_is_saved(tiny_diffusers_unet):
    unet = tiny_diffusers_unet()
    set_qgfd_processors(unet, QGFDConfig(alpha=0.3, iterations=50, tol=1e-3, alpha_mode="learnable"))
    names = [n for n, _ in unet.named_parameters() if n.endswith("alpha.logit")]
    assert len(names) == 4 and all(n in unet.state_dict() for n in names)
    out = unet(torch.randn(2, 3, 8, 8), torch.tensor([1, 2])).sample
    out.sum().backward()
    assert all(p.grad is not None for n, p in unet.named_parameters() if n.endswith("alpha.logit"))
    assert 1 <= mean_qgfd_iterations(unet) < 50


def test_processor_on_token_sequences_needs_a_square_or_a_shape(tiny_diffusers_unet):
    unet = tiny_diffusers_unet()
    attn = attention_modules(unet)[0]
    processor = QGFDAttnProcessor(QGFDConfig(alpha=0.5, iterations=2))
    tokens = torch.randn(1, 64, 16)
    assert processor(attn, tokens).shape == (1, 64, 16)
    with pytest.raises(ValueError, match="not square"):
        processor(attn, torch.randn(1, 12, 16))
    assert QGFDAttnProcessor(QGFDConfig(), grid_shape=(3, 4))(attn, torch.randn(1, 12, 16)).shape == (1, 12, 16)
