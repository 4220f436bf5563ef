"""The collapse measures on inputs whose answers are known by hand."""

from __future__ import annotations

import pytest
import torch

from models.measures.collapse import collapse_measures, consensus_distance, dirichlet_energy, effective_rank

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py); named apart
# from tests/models/training/test_collapse.py, since test modules share one namespace
COVERS = ["models.measures.collapse"]


def test_identical_rows_sit_on_the_consensus_subspace_with_rank_one():
    same = torch.tensor([1.0, -2.0, 0.5]).expand(5, 3)
    assert consensus_distance(same).item() == pytest.approx(0.0, abs=1e-12)
    assert effective_rank(same).item() == pytest.approx(1.0)
    assert dirichlet_energy(same, torch.ones(5, 5)).item() == pytest.approx(0.0, abs=1e-12)


def test_an_orthonormal_set_has_full_effective_rank():
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0)))
    assert effective_rank(q).item() == pytest.approx(6.0)
    assert effective_rank(torch.eye(4) * torch.tensor([1.0, 1.0, 0.0, 0.0])).item() == pytest.approx(2.0)


def test_consensus_distance_by_hand_and_invariant_to_scale():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # mean 0: all of X is off the consensus subspace
    assert consensus_distance(x).item() == pytest.approx(1.0)
    y = torch.tensor([[2.0, 1.0], [0.0, 1.0]])  # mean (1, 1): residual (+-1, 0), ||R|| = sqrt(2), ||X|| = sqrt(6)
    assert consensus_distance(y).item() == pytest.approx((2 / 6) ** 0.5)
    assert consensus_distance(10 * y).item() == pytest.approx(consensus_distance(y).item())
    assert consensus_distance(torch.zeros(3, 2)).item() == 0.0 and effective_rank(torch.zeros(3, 2)).item() == 0.0


def test_dirichlet_energy_on_a_path_graph_by_hand():
    path = torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0], [4.0, 2.0]])
    # edges (1,2), (2,3), (3,4): squared differences 1, 4, 9
    assert dirichlet_energy(x, path).item() == pytest.approx(14.0)
    assert dirichlet_energy(x, path, relative=True).item() == pytest.approx(14.0 / (1 + 1 + 4 + 16 + 4))


def test_padding_rows_change_nothing():
    x = torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(1))
    adjacency = (torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(2)) > 0.4).float()
    adjacency = torch.maximum(adjacency, adjacency.transpose(1, 2))
    padded = torch.cat([x, torch.full((1, 2, 3), 7.0)], dim=1)
    padded_adjacency = torch.ones(1, 6, 6)
    padded_adjacency[:, :4, :4] = adjacency
    mask = torch.tensor([[True] * 4 + [False] * 2])
    assert consensus_distance(padded, mask).item() == pytest.approx(consensus_distance(x).item())
    assert effective_rank(padded, mask).item() == pytest.approx(effective_rank(x).item())
    assert dirichlet_energy(padded, padded_adjacency, mask).item() == pytest.approx(dirichlet_energy(x, adjacency).item())


def test_collapse_measures_per_layer_and_bad_shapes():
    states = [torch.randn(2, 5, 4), torch.ones(2, 5, 4)]
    found = collapse_measures(states, torch.ones(2, 5, 5))
    assert found["effective_rank"][1] == pytest.approx(1.0) and found["consensus_distance"][1] == pytest.approx(0.0)
    assert found["effective_rank"][0] > 1
    with pytest.raises(ValueError, match=r"states of shape \(5,\)"):
        consensus_distance(torch.ones(5))
    with pytest.raises(ValueError, match="adjacency of shape"):
        dirichlet_energy(torch.ones(2, 5, 4), torch.ones(5, 4))
