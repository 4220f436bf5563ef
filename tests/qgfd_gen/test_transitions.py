"""Transitions P: the grid graph, knn's chunking and gradient flag, sparse against dense adjacency."""

import pytest
import torch

from operator_cases import B, N, qkv, random_graph
from qgfd_gen import AdjacencyTransition, GridTransition, KNNTransition, qgfd_attention
from qgfd_gen.transition_operators import grid_matrix

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["qgfd_gen.transition_operators"]


def test_grid_transition_is_the_degree_normalised_pixel_graph():
    matrix = grid_matrix(3, 4, 8)
    assert torch.allclose(matrix.sum(1), torch.ones(12, dtype=torch.float64))
    assert matrix[0, 0] == pytest.approx(1 / 4)  # corner: itself and 3 neighbours
    assert matrix[5, 5] == pytest.approx(1 / 9)  # interior
    assert grid_matrix(3, 4, 4)[5, 5] == pytest.approx(1 / 5)
    h = torch.randn(1, 1, 12, 2, dtype=torch.float64)
    op = GridTransition(3, 4).bind(h)
    assert torch.allclose(op.matmul(h), matrix @ h)


def test_knn_gradient_flag():
    _, k, _ = qkv(requires_grad=True)
    assert not KNNTransition(3).bind(k).weight.requires_grad
    assert KNNTransition(3, grad=True).bind(k).weight.requires_grad


def test_knn_chunking_does_not_change_p():
    _, k, _ = qkv()
    whole = KNNTransition(4, chunk_size=1000).bind(k).to_dense()
    chunked = KNNTransition(4, chunk_size=5).bind(k).to_dense()
    assert torch.allclose(whole, chunked, rtol=0, atol=1e-12)
    assert torch.allclose(whole.sum(-1), torch.ones_like(whole.sum(-1)))
    assert int((whole > 0).sum(-1).max()) == 4


def test_sparse_and_dense_adjacency_agree():
    q, k, v = qkv()
    adjacency = random_graph()
    adjacency = adjacency * torch.rand_like(adjacency)  # weighted
    batch, row, col = adjacency.nonzero(as_tuple=True)
    sparse = AdjacencyTransition(edge_index=torch.stack([row, col]), edge_weight=adjacency[batch, row, col], edge_batch=batch)
    dense = AdjacencyTransition(adjacency)
    assert torch.allclose(sparse.bind(k).to_dense(), dense.bind(k).to_dense())
    a = qgfd_attention(q, k, v, sparse, alpha=0.7, iterations=5)
    b = qgfd_attention(q, k, v, dense, alpha=0.7, iterations=5)
    assert (a - b).abs().max() < 1e-12
    # a shared graph [N, N] equals the same graph repeated per batch element
    shared = AdjacencyTransition(adjacency[0])
    repeated = AdjacencyTransition(adjacency[0].expand(B, N, N))
    assert torch.allclose(qgfd_attention(q, k, v, shared, alpha=0.5, iterations=3), qgfd_attention(q, k, v, repeated, alpha=0.5, iterations=3))


def test_transitions_with_nan_or_negative_weights_are_refused():
    q, k, v = qkv()
    nan_matrix = torch.full((N, N), 1.0 / N, dtype=torch.float64)
    nan_matrix[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        qgfd_attention(q, k, v, nan_matrix, alpha=0.5, iterations=2)
    signed = random_graph()
    signed[0, 0, 1] = -3.0
    with pytest.raises(ValueError, match="negative entries"):
        AdjacencyTransition(signed)
    with pytest.raises(ValueError, match="edge_weight has NaN"):
        AdjacencyTransition(edge_index=torch.tensor([[0], [1]]), edge_weight=torch.tensor([float("nan")]))
    assert AdjacencyTransition(random_graph() > 0)  # a bool graph needs no check
