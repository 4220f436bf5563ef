"""The 4-node orbit counter against hand counts and against a brute force over every node subset."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
from networkx.algorithms.isomorphism import GraphMatcher

from models.measures.graph_orbits import mean_orbit_counts, orbit_counts

# Each graphlet with each of its nodes' orbit, written out independently of the counter's rules.
GRAPHLETS = [
    (nx.path_graph(2), {0: 0, 1: 0}),
    (nx.path_graph(3), {0: 1, 1: 2, 2: 1}),
    (nx.complete_graph(3), {0: 3, 1: 3, 2: 3}),
    (nx.path_graph(4), {0: 4, 1: 5, 2: 5, 3: 4}),
    (nx.star_graph(3), {0: 7, 1: 6, 2: 6, 3: 6}),
    (nx.cycle_graph(4), {0: 8, 1: 8, 2: 8, 3: 8}),
    (nx.Graph([(0, 1), (1, 2), (2, 0), (2, 3)]), {3: 9, 0: 10, 1: 10, 2: 11}),
    (nx.Graph([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]), {1: 12, 3: 12, 0: 13, 2: 13}),
    (nx.complete_graph(4), {0: 14, 1: 14, 2: 14, 3: 14}),
]


def brute_force_orbits(graph: nx.Graph) -> np.ndarray:
    nodes = list(graph.nodes)
    counts = np.zeros((len(nodes), 15), dtype=np.int64)
    for size in (2, 3, 4):
        for subset in itertools.combinations(nodes, size):
            induced = graph.subgraph(subset)
            if not nx.is_connected(induced):
                continue
            for pattern, orbit in GRAPHLETS:
                matcher = GraphMatcher(induced, pattern)
                if matcher.is_isomorphic():
                    for node, image in matcher.mapping.items():
                        counts[nodes.index(node), orbit[image]] += 1
                    break
    return counts


def test_hand_counts_of_a_path_of_four_and_of_k4():
    path = orbit_counts(nx.path_graph(4))
    assert path[0].tolist() == [1, 1, 0, 0, 1] + [0] * 10
    assert path[1].tolist() == [2, 1, 1, 0, 0, 1] + [0] * 9
    k4 = orbit_counts(nx.complete_graph(4))
    assert (k4 == np.array([3, 0, 0, 3] + [0] * 10 + [1])).all()  # induced: no path or cycle inside K4


@pytest.mark.parametrize("seed", range(6))
def test_every_orbit_count_equals_a_brute_force_over_all_subsets(seed):
    graph = nx.gnp_random_graph(9, 0.2 + 0.1 * seed, seed=seed)
    assert (orbit_counts(graph) == brute_force_orbits(graph)).all()


def test_a_planar_triangulation_has_the_counts_degrees_and_triangles_imply():
    graph = nx.convert_node_labels_to_integers(nx.triangular_lattice_graph(3, 4))
    counts = orbit_counts(graph)
    degrees = np.array([d for _, d in graph.degree])
    triangles = np.array([nx.triangles(graph, n) for n in graph.nodes])
    assert (counts[:, 0] == degrees).all() and (counts[:, 3] == triangles).all()
    assert (counts[:, 2] == degrees * (degrees - 1) // 2 - triangles).all()  # pairs of neighbours not joined
    assert np.allclose(mean_orbit_counts(graph), counts.sum(0) / graph.number_of_nodes())
    assert mean_orbit_counts(nx.Graph()).shape == (15,)
