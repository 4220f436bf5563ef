"""The field's synthetic graph benchmarks, made offline by their published recipes, with a fixed seed:

- planar: the Delaunay triangulation of 64 points drawn uniformly in the unit square (SPECTRE, Martinkus et al.
  2022);
- tree: uniformly random labelled trees of 64 nodes (a uniform Pruefer sequence; Bergmeister et al. 2024).

200 graphs split 128 / 32 / 40 (train / validation / test) by a seeded permutation. Graphs carry no attributes:
one node type, an edge present or absent, given as (atoms [B, n] of zeros, bonds [B, n, n] of 0 / 1) so that the
graph diffusion and denoiser the molecules use read them unchanged.
"""

from __future__ import annotations

from typing import Optional

import networkx as nx
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from .graphs import GraphDataModule, graph_counts

KINDS = ("planar", "tree")
SPLIT = {"train": 128, "val": 32, "test": 40}  # of 200 graphs, as SPECTRE and its successors split them


def planar_graph(num_nodes: int, rng: np.random.Generator) -> nx.Graph:
    """The Delaunay triangulation of `num_nodes` uniform points in the unit square (connected and planar)."""
    from scipy.spatial import Delaunay

    triangles = Delaunay(rng.random((num_nodes, 2))).simplices
    graph = nx.Graph()
    graph.add_nodes_from(range(num_nodes))
    graph.add_edges_from((int(a), int(b)) for tri in triangles for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[0], tri[2])))
    return graph


def tree_graph(num_nodes: int, rng: np.random.Generator) -> nx.Graph:
    """A uniformly random labelled tree: every one of the n^(n-2) trees equally likely (Pruefer's bijection)."""
    if num_nodes < 3:
        return nx.path_graph(num_nodes)
    return nx.from_prufer_sequence(rng.integers(0, num_nodes, num_nodes - 2).tolist())


def make_graphs(kind: str, count: int, num_nodes: int, seed: int) -> list[nx.Graph]:
    """`count` graphs of the recipe, graph i from the stream (seed, i): the same set on every machine."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; choose one of {', '.join(KINDS)}")
    make = planar_graph if kind == "planar" else tree_graph
    return [make(num_nodes, np.random.default_rng([seed, index])) for index in range(count)]


def dense_graphs(graphs: list[nx.Graph], num_nodes: int) -> tuple[Tensor, Tensor]:
    """(atoms [B, n]: 0 for a node, -1 for padding; bonds [B, n, n]: 1 for an edge) as the graph diffusion reads."""
    atoms = torch.full((len(graphs), num_nodes), -1, dtype=torch.long)
    bonds = torch.zeros(len(graphs), num_nodes, num_nodes, dtype=torch.long)
    for i, graph in enumerate(graphs):
        atoms[i, : graph.number_of_nodes()] = 0
        edges = torch.tensor(list(graph.edges()), dtype=torch.long).reshape(-1, 2)
        bonds[i, edges[:, 0], edges[:, 1]] = bonds[i, edges[:, 1], edges[:, 0]] = 1
    return atoms, bonds


class SyntheticGraphDataModule(GraphDataModule):
    """The planar or tree graph benchmark, generated at setup by its published recipe (no file, no download):
    SPECTRE's planar graphs (Delaunay triangulations of uniform points in the unit square) or uniformly random
    labelled trees, 200 graphs split 128 / 32 / 40.

    Args:
        kind: ``planar`` or ``tree``.
        num_graphs: 200, the benchmark's size (anything else is refused).
        num_nodes: nodes per graph (64 in the benchmark).
        seed: the generator's seed.
        batch_size: graphs per training batch.
        num_workers: data loader workers.

    Example:
        >>> data = SyntheticGraphDataModule("tree", num_nodes=8)
        >>> data.setup()
        >>> tuple(len(data.graphs(split)) for split in ("train", "val", "test"))
        (128, 32, 40)
    """

    def __init__(self, kind: str = "planar", num_graphs: int = 200, num_nodes: int = 64, seed: int = 0,
                 batch_size: int = 32, num_workers: int = 0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}; choose one of {', '.join(KINDS)}")
        if num_graphs != sum(SPLIT.values()):
            raise ValueError(f"num_graphs={num_graphs!r}; the benchmark is {sum(SPLIT.values())} graphs split "
                             f"{SPLIT['train']} / {SPLIT['val']} / {SPLIT['test']}")
        if num_nodes < 4:
            raise ValueError(f"num_nodes={num_nodes!r}; need at least 4")
        self.save_hyperparameters()
        self.kind, self.num_graphs, self.num_nodes, self.seed = kind, num_graphs, num_nodes, seed
        self.batch_size, self.num_workers = batch_size, num_workers
        self.splits: Optional[dict[str, list[nx.Graph]]] = None

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits is not None:
            return
        graphs = make_graphs(self.kind, self.num_graphs, self.num_nodes, self.seed)
        order = np.random.default_rng(self.seed).permutation(self.num_graphs)
        bounds = np.cumsum([0, SPLIT["train"], SPLIT["val"], SPLIT["test"]])
        self.splits = {name: [graphs[i] for i in order[lo:hi]]
                       for name, lo, hi in zip(SPLIT, bounds[:-1], bounds[1:])}

    def graphs(self, split: str) -> list[nx.Graph]:
        self.setup()
        return self.splits[split]

    def statistics(self) -> tuple[Tensor, Tensor, Tensor]:
        """Training-set counts: node types (one), edge states over node pairs (0 = none, 1 = edge), graph sizes."""
        atoms, bonds = dense_graphs(self.graphs("train"), self.num_nodes)
        return graph_counts(atoms, bonds, 1, 2, self.num_nodes)

    def dataset(self, split: str) -> TensorDataset:
        return TensorDataset(*dense_graphs(self.graphs(split), self.num_nodes))
