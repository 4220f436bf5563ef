"""QGFD as building blocks: its config, the per-layer alpha, the attention module, and overrides."""

import pytest
import torch

from qgfd_gen import AdjacencyTransition
from qgfd_gen.attention import LayerAlpha, QGFDAttention, QGFDConfig, override_qgfd
from qgfd_gen.processor import set_qgfd_processors

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["qgfd_gen.config"]


def test_damped_alpha_over_depth(tiny_diffusers_unet):
    config = QGFDConfig(alpha=0.8, alpha_mode="damped", gamma=0.5)
    assert [LayerAlpha(config, l)() for l in range(3)] == [0.8, 0.4, 0.2]
    unet = tiny_diffusers_unet()
    alphas = [p.alpha() for p in set_qgfd_processors(unet, config)]
    assert alphas == [0.8 * 0.5**l for l in range(4)]


def test_qgfd_attention_module_with_graph_and_padding():
    torch.manual_seed(0)
    module = QGFDAttention(16, heads=2, config=QGFDConfig(alpha=0.5, iterations=3, transition="knn", knn_k=3))
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
        (dict(iterations=-2), "iterations=-2"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QGFDConfig(**kwargs)


def test_override_changes_every_setting_it_accepts_and_refuses_the_rest():
    torch.manual_seed(0)
    module = QGFDAttention(16, heads=2, config=QGFDConfig(alpha=0.5, iterations=3, transition="knn", knn_k=3))
    x = torch.randn(2, 6, 16)
    with override_qgfd(module, iterations=7) as layers:
        assert layers == 1
        module(x)
        assert module.last_stats.iterations_used.tolist() == [7, 7]
    module(x)
    assert module.last_stats.iterations_used.tolist() == [3, 3]  # restored on leaving
    with override_qgfd(module, iterations=50, tol=1e-2):
        module(x)
        assert (module.last_stats.iterations_used < 50).all()
    with pytest.raises(ValueError, match=r"cannot change \['alpha'\]; it changes only iterations, tol"):
        with override_qgfd(module, alpha=0.1):
            pass


def test_config_from_mappings_names_unknown_fields():
    assert QGFDConfig.coerce({"alpha": 0.3, "iterations": 2}) == QGFDConfig(alpha=0.3, iterations=2)
    assert QGFDConfig.coerce(None, alpha=0.2).alpha == 0.2
    with pytest.raises(ValueError, match=r"qgfd: unknown setting\(s\) \['steps'\]; valid: .*'iterations'"):
        QGFDConfig.coerce({"steps": 3})
