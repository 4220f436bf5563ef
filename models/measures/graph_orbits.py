"""Node orbit counts of the graphlets of 2 to 4 nodes: the statistic behind the field's orbit MMD.

GraphRNN, GRAN, SPECTRE and DiGress count them with the ORCA program; this is an exact count of the same
15 orbits (Przulj's numbering), written here so no compiled tool is needed. A graphlet is a connected
*induced* subgraph; a node's count at orbit o is the number of graphlets in which it sits at position o:

    0  edge                         5  path of 4, an inner node     10 paw, a triangle node of degree 2
    1  path of 3, an end            6  star of 3, a leaf            11 paw, the node of degree 3
    2  path of 3, the middle        7  star of 3, the centre        12 diamond, a node of degree 2
    3  triangle                     8  4-cycle                      13 diamond, a node of degree 3
    4  path of 4, an end            9  paw (triangle + tail), the tail's end   14 K4

Every connected node set of size <= 4 is visited once by the ESU enumeration (Wernicke 2006): a set grows
only from its smallest node, by nodes larger than it that are new neighbours of the last one added.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

ORBITS = 15


def _orbits_of(size: int, edges: int, degree: int, max_degree: int) -> int:
    """The orbit of a node of induced degree `degree` in a connected graphlet of `size` nodes and `edges` edges."""
    if size == 2:
        return 0
    if size == 3:
        return 3 if edges == 3 else (1 if degree == 1 else 2)
    if edges == 3:  # a tree on 4 nodes: the path or the star
        if max_degree == 2:
            return 4 if degree == 1 else 5
        return 6 if degree == 1 else 7
    if edges == 4:  # the 4-cycle (all of degree 2) or the paw (degrees 1, 2, 2, 3)
        return 8 if max_degree == 2 else {1: 9, 2: 10, 3: 11}[degree]
    if edges == 5:
        return 12 if degree == 2 else 13
    return 14


MAX_ORBIT_WORK = 10**8  # sum over nodes of degree^3, which bounds the connected 4-node sets the count visits


def check_orbit_work(graph: nx.Graph) -> None:
    """Refuse a graph whose 4-node orbit count would run for minutes (a dense graph of a few thousand nodes), in one
    line naming its size, before counting."""
    from qgfd_gen.errors import UsageError

    work = sum(int(d) ** 3 for _, d in graph.degree())
    if work > MAX_ORBIT_WORK:
        raise UsageError(f"a graph of {graph.number_of_nodes():,} nodes and {graph.number_of_edges():,} edges is too "
                         f"dense for the 4-node orbit count (sum of degree^3 {work:.2g}, the limit {MAX_ORBIT_WORK:.0e}); "
                         f"the benchmarks' graphs are far below it")


def orbit_counts(graph: nx.Graph) -> np.ndarray:
    """[nodes, 15] counts of each node's orbits (nodes in `graph.nodes` order; self-loops ignored); refused above
    MAX_ORBIT_WORK."""
    check_orbit_work(graph)
    index = {node: i for i, node in enumerate(graph.nodes)}
    neighbours = [set() for _ in index]
    for u, v in graph.edges:
        if u != v:
            neighbours[index[u]].add(index[v])
            neighbours[index[v]].add(index[u])
    counts = np.zeros((len(index), ORBITS), dtype=np.int64)

    def record(nodes: list[int]) -> None:
        degrees = [sum(other in neighbours[node] for other in nodes) for node in nodes]
        edges, top = sum(degrees) // 2, max(degrees)
        for node, degree in zip(nodes, degrees):
            counts[node, _orbits_of(len(nodes), edges, degree, top)] += 1

    def grow(nodes: list[int], frontier: set[int], reached: set[int], root: int) -> None:
        if len(nodes) > 1:
            record(nodes)
        if len(nodes) == 4:
            return
        frontier = set(frontier)
        while frontier:
            new = frontier.pop()
            fresh = {w for w in neighbours[new] if w > root and w not in reached}
            grow(nodes + [new], frontier | fresh, reached | fresh, root)

    for root in range(len(index)):
        start = {w for w in neighbours[root] if w > root}
        grow([root], start, start | neighbours[root] | {root}, root)
    return counts


def mean_orbit_counts(graph: nx.Graph) -> np.ndarray:
    """The per-graph vector the orbit MMD compares: orbit counts summed over nodes, divided by the node count."""
    return orbit_counts(graph).sum(0) / max(graph.number_of_nodes(), 1)
