"""Random-walk structural features, QGFD that respects the noise (alpha by the chain's signal share, a graph the
denoiser believes in), and the per-sample alpha they rest on."""

from __future__ import annotations

import pytest
import torch

from models.networks.graph_transformer import GraphTransformer, GraphTransformerConfig
from models.networks.structure import random_walk_features
from models.processes.discrete_diffusion import cosine_alpha_bar
from operator_cases import qkv, transitions
from qgfd_gen.attention import QGFDConfig
from qgfd_gen.operator import qgfd_attention

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["models.networks.graph_transformer"]


def graph(n: int, edges: list[tuple[int, int]]) -> torch.Tensor:
    adjacency = torch.zeros(n, n, dtype=torch.bool)
    for i, j in edges:
        adjacency[i, j] = adjacency[j, i] = True
    return adjacency


def test_return_probabilities_of_a_path_a_triangle_and_an_isolated_node():
    path_and_lonely = graph(4, [(0, 1), (1, 2)])  # node 3 has no bond
    triangle = graph(4, [(0, 1), (1, 2), (2, 0)])
    node, pair = random_walk_features(torch.stack([path_and_lonely, triangle]), steps=3)
    assert node.shape == (2, 4, 3) and pair.shape == (2, 4, 4, 3)
    assert torch.allclose(node[0, :, 1], torch.tensor([0.5, 1.0, 0.5, 0.0]))  # two steps: back along the path
    assert torch.allclose(node[0, :, 0], torch.zeros(4)) and torch.allclose(pair[0, 3], torch.zeros(4, 3))
    assert torch.allclose(node[1, :3, 2], torch.full((3,), 0.25))  # round the triangle either way: 2 * (1/2)^3
    assert torch.allclose(pair[1, 0, :, 0], torch.tensor([0.0, 0.5, 0.5, 0.0]))  # P itself


def test_random_walks_tell_a_hexagon_from_two_triangles_where_degrees_cannot():
    hexagon = graph(6, [(i, (i + 1) % 6) for i in range(6)])
    triangles = graph(6, [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)])
    assert torch.equal(hexagon.sum(1), triangles.sum(1))  # every node of degree 2 in both
    node, _ = random_walk_features(torch.stack([hexagon, triangles]), steps=6)
    assert torch.allclose(node[0, :, 2], torch.zeros(6)) and torch.allclose(node[1, :, 2], torch.full((6,), 0.25))
    assert node[0, 0, 5] > 0  # the hexagon's ring closes at six steps


def small_denoiser(**network) -> GraphTransformer:
    torch.manual_seed(0)
    config = GraphTransformerConfig(node_dim=16, edge_dim=8, layers=2, heads=2, **network)
    return GraphTransformer(4, 4, config, QGFDConfig(alpha=0.5, iterations=2, transition="adjacency"), max_atoms=9,
                            bond_signal=cosine_alpha_bar(20))


def noisy_graphs(batch: int = 3, n: int = 9):
    generator = torch.Generator().manual_seed(0)
    atoms = torch.nn.functional.one_hot(torch.randint(0, 4, (batch, n), generator=generator), 4).float()
    upper = torch.triu(torch.randint(0, 4, (batch, n, n), generator=generator), 1)
    bonds = torch.nn.functional.one_hot(upper + upper.transpose(1, 2), 4).float()
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[0, 6:] = False
    return atoms, bonds, mask


def test_rrwp_features_enter_the_embeddings_and_the_denoiser_trains():
    model = small_denoiser(rrwp_steps=8)
    assert model.node_in.in_features == 4 + 10 + 8 + 8 and model.edge_in.in_features == 4 + 8
    atoms, bonds, mask = noisy_graphs()
    atom_logits, bond_logits = model(atoms, bonds, torch.full((3,), 0.5), mask)
    (atom_logits.sum() + bond_logits.sum()).backward()
    assert torch.isfinite(model.edge_in.weight.grad).all() and model.edge_in.weight.grad[:, 4:].abs().sum() > 0


def test_alpha_by_signal_is_the_full_alpha_on_a_clean_graph_and_almost_none_on_pure_noise():
    atoms, bonds, mask = noisy_graphs()
    scaled, plain = small_denoiser(alpha_by_signal=True), small_denoiser()
    plain.load_state_dict(scaled.state_dict())
    assert torch.allclose(scaled.signal_share(torch.tensor([0.0, 0.5, 1.0])), cosine_alpha_bar(20)[[0, 10, 20]].float())
    clean = torch.zeros(3)
    assert torch.allclose(scaled(atoms, bonds, clean, mask)[1], plain(atoms, bonds, clean, mask)[1], atol=1e-6)
    for layer in plain.layers:  # plain attention on the same weights
        layer.attention.alpha.value = 0.0
    noise = torch.ones(3)
    assert torch.allclose(scaled(atoms, bonds, noise, mask)[1], plain(atoms, bonds, noise, mask)[1], atol=1e-5)
    with pytest.raises(ValueError, match="needs the bond chain's alpha_bar"):
        GraphTransformer(4, 4, GraphTransformerConfig(alpha_by_signal=True), max_atoms=9)


@pytest.mark.parametrize("kind", ["predicted", "mixed"])
def test_the_believed_graph_is_a_masked_soft_graph_and_gradients_flow_only_when_asked(kind):
    atoms, bonds, mask = noisy_graphs()
    model = small_denoiser(graph=kind)
    e = torch.randn(3, 9, 9, 8, requires_grad=True)
    pair = mask[:, :, None] & mask[:, None, :]
    noisy = (bonds[..., 1:].sum(-1) > 0.5) & pair
    weights = model.believed_graph(e, noisy, pair).adjacency
    assert weights.shape == (3, 9, 9) and not weights.requires_grad
    assert torch.all(weights.diagonal(dim1=1, dim2=2) <= (0.5 if kind == "mixed" else 0.0))
    assert torch.all(weights[0, 6:] == 0) and weights.min() >= 0 and weights.max() <= 1
    grads = []
    for graph_grad in (False, True):
        model = small_denoiser(graph=kind, graph_grad=graph_grad)
        model(atoms, bonds, torch.full((3,), 0.3), mask)[0].sum().backward()  # atom logits: reach edge_out only
        grads.append(model.edge_out[1].weight.grad)  # through the graph QGFD diffused over
    assert grads[0] is None and grads[1] is not None and grads[1].abs().sum() > 0


def test_bad_structure_settings_are_refused():
    with pytest.raises(ValueError, match="graph='believed'"):
        GraphTransformerConfig(graph="believed")
    with pytest.raises(ValueError, match="rrwp_steps=-1"):
        GraphTransformerConfig(rrwp_steps=-1)
    with pytest.raises(ValueError, match="graph_mix=1.5"):
        GraphTransformerConfig(graph="mixed", graph_mix=1.5)


@pytest.mark.parametrize("name", [n for n in transitions() if not n.startswith("adjacency")])
def test_one_alpha_per_sample_equals_each_sample_with_its_own(name):
    q, k, v = qkv()
    transition = transitions()[name]  # once: the "matrix" case is drawn anew on every call
    alpha = torch.tensor([[0.2], [0.7]], dtype=torch.float64)
    together = qgfd_attention(q, k, v, transition, alpha=alpha, iterations=3)
    alone = [qgfd_attention(q[i:i + 1], k[i:i + 1], v[i:i + 1], transition, alpha=float(alpha[i, 0]),
                            iterations=3) for i in range(2)]
    assert torch.allclose(together, torch.cat(alone), atol=1e-12)
    with pytest.raises(ValueError, match=r"alpha has shape \(3, 1\)"):
        qgfd_attention(q, k, v, transition, alpha=torch.full((3, 1), 0.5, dtype=torch.float64), iterations=1)


def test_the_closed_forms_residual_after_one_iteration_is_the_iterations():
    q, k, v = qkv()
    transition = transitions()["adjacency-dense"]
    closed = qgfd_attention(q, k, v, transition, alpha=0.5, iterations=1, return_stats=True)[1]  # closed form
    iterated = qgfd_attention(q, k, v, transition, alpha=0.5, iterations=1, return_stats=True, trace=True)[1]
    assert torch.allclose(closed.residual, iterated.residual, atol=1e-12)
