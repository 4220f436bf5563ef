"""QGFD as modules: the attention module, the per-layer alpha, and the diffusers processor."""

import pytest
import torch
from diffusers import UNet2DModel

from qgfd_gen import AdjacencyTransition
from qgfd_gen.attention import LayerAlpha, QGFDAttention, QGFDConfig
from qgfd_gen.attention import mean_qgfd_iterations
from qgfd_gen.processor import QGFDAttnProcessor, attention_modules, set_qgfd_processors


def tiny_unet(**kwargs) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("AttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "AttnUpBlock2D"),
        norm_num_groups=8, attention_head_dim=8, **kwargs,
    )


def test_processor_alpha_zero_reproduces_stock_unet():
    unet = tiny_unet().eval()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        stock = unet(x, t).sample
        processors = set_qgfd_processors(unet, QGFDConfig(alpha=0.0, steps=4))
        assert len(processors) == len(attention_modules(unet)) == 4  # down, mid, 2 x up
        qgfd0 = unet(x, t).sample
        set_qgfd_processors(unet, QGFDConfig(alpha=0.6, steps=4))
        qgfd = unet(x, t).sample
    assert (stock - qgfd0).abs().max() < 1e-5
    assert (stock - qgfd).abs().max() > 1e-4  # diffusion over the grid does change the output
    assert mean_qgfd_iterations(unet) == 4.0


def test_processor_early_stopping_and_learnable_alpha_is_saved():
    unet = tiny_unet()
    set_qgfd_processors(unet, QGFDConfig(alpha=0.3, steps=50, eps=1e-3, alpha_mode="learnable"))
    names = [n for n, _ in unet.named_parameters() if n.endswith("alpha.logit")]
    assert len(names) == 4 and all(n in unet.state_dict() for n in names)
    out = unet(torch.randn(2, 3, 8, 8), torch.tensor([1, 2])).sample
    out.sum().backward()
    assert all(p.grad is not None for n, p in unet.named_parameters() if n.endswith("alpha.logit"))
    assert 1 <= mean_qgfd_iterations(unet) < 50


def test_damped_alpha_over_depth():
    config = QGFDConfig(alpha=0.8, alpha_mode="damped", gamma=0.5)
    assert [LayerAlpha(config, l)() for l in range(3)] == [0.8, 0.4, 0.2]
    unet = tiny_unet()
    alphas = [p.alpha() for p in set_qgfd_processors(unet, config)]
    assert alphas == [0.8 * 0.5**l for l in range(4)]


def test_qgfd_attention_module_with_graph_and_padding():
    torch.manual_seed(0)
    module = QGFDAttention(16, heads=2, config=QGFDConfig(alpha=0.5, steps=3, transition="knn", knn_k=3))
    x = torch.randn(2, 6, 16)
    assert module(x).shape == (2, 6, 16)
    adjacency = torch.zeros(2, 6, 6)
    adjacency[:, 0, 1] = adjacency[:, 1, 0] = 1
    mask = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    out = module(x, transition=AdjacencyTransition(adjacency), key_padding_mask=mask)
    alone = module(x[1:, :4], transition=AdjacencyTransition(adjacency[1:, :4, :4]))
    assert torch.allclose(out[1, :4], alone[0], atol=1e-6)
    grid = QGFDAttention(16, heads=2, config=QGFDConfig(transition="grid"))
    assert grid(torch.randn(1, 12, 16), grid_shape=(3, 4)).shape == (1, 12, 16)
    with pytest.raises(ValueError, match="needs a feature-map shape"):
        grid(torch.randn(1, 12, 16))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(alpha=1.2), "alpha=1.2"),
        (dict(transition="ring"), "transition='ring'"),
        (dict(alpha_mode="wild"), "alpha_mode='wild'"),
        (dict(gamma=0.0), "gamma=0.0"),
        (dict(steps=-2), "steps=-2"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QGFDConfig(**kwargs)


def test_processor_on_token_sequences_needs_a_square_or_a_shape():
    unet = tiny_unet()
    attn = attention_modules(unet)[0]
    processor = QGFDAttnProcessor(QGFDConfig(alpha=0.5, steps=2))
    tokens = torch.randn(1, 64, 16)
    assert processor(attn, tokens).shape == (1, 64, 16)
    with pytest.raises(ValueError, match="not square"):
        processor(attn, torch.randn(1, 12, 16))
    assert QGFDAttnProcessor(QGFDConfig(), grid_shape=(3, 4))(attn, torch.randn(1, 12, 16)).shape == (1, 12, 16)
