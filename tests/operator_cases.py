"""Small operator problems shared by the operator and transition tests: q, k, v and one of each transition."""

import torch

from qgfd_gen import AdjacencyTransition, DenseTransition, GridTransition, KNNTransition

B, HEADS, LQ, N, D = 2, 3, 5, 12, 4  # N = 3 x 4 grid


def qkv(dtype=torch.float64, n=N, lq=LQ, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, HEADS, L, D, generator=g, dtype=dtype) for L in (lq, n, n))
    return [t.requires_grad_(requires_grad) for t in (q, k, v)]


def random_graph(n=N, seed=1):
    g = torch.Generator().manual_seed(seed)
    adjacency = (torch.rand(B, n, n, generator=g) < 0.3).double()
    adjacency[:, 2] = 0.0  # an isolated row: must become a self loop
    return adjacency


def transitions():
    adjacency = random_graph()
    batch, row, col = adjacency.nonzero(as_tuple=True)
    return {
        "grid8": GridTransition(3, 4, neighbours=8),
        "grid4": GridTransition(3, 4, neighbours=4),
        "knn": KNNTransition(k=3, chunk_size=5),
        "dense": DenseTransition(),
        "adjacency-dense": AdjacencyTransition(adjacency),
        "adjacency-sparse": AdjacencyTransition(edge_index=torch.stack([row, col]), edge_batch=batch),
        "matrix": torch.softmax(torch.randn(N, N, dtype=torch.float64), -1),
    }
