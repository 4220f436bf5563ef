"""Attention statistics against hand computations: a one-hot p0 spread by grid QGFD, uniform weights, padding."""

from __future__ import annotations

import math

import pytest
import torch

from qgfd_gen.attention_statistics import attention_statistics, effective_weights, entropy
from qgfd_gen.transitions import AdjacencyTransition, GridTransition


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.9])
def test_a_one_hot_p0_under_grid_qgfd_has_the_hand_computed_entropy(alpha):
    """3x3 grid, 8 neighbours and a self loop: the centre's row of P is 1/9 on all nine pixels. With p0 one-hot on
    the centre, one iteration gives p1 = (1 - a) e_c + a P[c]: (1 - a) + a/9 on the centre and a/9 elsewhere."""
    matrix = GridTransition(3, 3).bind(torch.zeros(1, 1, 9, 2)).to_dense().double()
    p0 = torch.zeros(1, 9, dtype=torch.double)
    p0[0, 4] = 1.0
    p1 = effective_weights(p0, matrix, alpha, iterations=1)
    centre, other = (1 - alpha) + alpha / 9, alpha / 9
    hand = -(centre * math.log(centre) + 8 * other * math.log(other))
    assert float(entropy(p1)) == pytest.approx(hand, rel=1e-12)
    assert float(entropy(p0)) == 0.0  # plain attention's one-hot weights: no entropy at all


def test_the_statistics_see_the_one_hot_p0_and_qgfds_spread():
    """Keys that make the centre's logit dominate give p0 near one-hot and p_T with the grid's spread."""
    k = torch.zeros(1, 1, 9, 2)
    k[0, 0, 4] = torch.tensor([50.0, 0.0])
    q = torch.tensor([1.0, 0.0]).expand(1, 1, 9, 2).clone()
    stats = attention_statistics(q, k, GridTransition(3, 3), alpha=0.5, iterations=1, rows=9)
    centre, other = 0.5 + 0.5 / 9, 0.5 / 9
    assert stats["entropy_p0"] < 1e-6
    assert stats["entropy_pT"] == pytest.approx(-(centre * math.log(centre) + 8 * other * math.log(other)), rel=1e-4)
    assert stats["max_logit"] == pytest.approx(50 / math.sqrt(2), rel=1e-6)
    assert stats["top5_pT"] == pytest.approx(centre + 4 * other, rel=1e-4)


def test_padded_keys_are_left_out_and_a_per_sample_graph_binds_to_its_batch():
    q = torch.zeros(3, 2, 4, 8)
    k = torch.randn(3, 2, 4, 8, generator=torch.Generator().manual_seed(0)) * 0  # uniform attention
    padding = torch.tensor([[False, False, True, True]] * 3)
    adjacency = torch.ones(3, 4, 4)
    stats = attention_statistics(q, k, AdjacencyTransition(adjacency), alpha=0.5, iterations=3,
                                 key_padding_mask=padding, samples=2)
    assert stats["entropy_p0"] == pytest.approx(math.log(2)) and stats["entropy_pT"] == pytest.approx(math.log(2))
    plain = attention_statistics(q, k, None, key_padding_mask=padding)
    assert plain["entropy_pT"] == plain["entropy_p0"] == pytest.approx(math.log(2))
