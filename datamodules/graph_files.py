"""Graphs made elsewhere, read plainly: `qgfd-eval graphs --samples FILE` scores any model's graphs with the
workbench's metrics, and `qgfd-sample graphs` writes its own in the first layout.

- `.npz`, one stacked array: `adjacency` [N, n, n] of 0 / 1 (padded) with `num_nodes` [N] (what qgfd-sample
  writes), or a single [N, n, n] array without node counts (every graph n nodes);
- `.npz`, one array per graph (numpy.savez(*matrices) writes `arr_0`, `arr_1`, ...), each square;
- text: one edge `u v` per line (node labels are integers), graphs separated by a blank line; a line `nodes N`
  in a block gives its node count (nodes without edges), otherwise the nodes are those the edges name.

Every matrix must be square, symmetric, 0 / 1 and without self-loops; a file that breaks that is refused naming
the graph and what is wrong, before any scoring."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import networkx as nx
import numpy as np

from qgfd_gen.errors import UsageError
from qgfd_gen.io import atomic_path
from qgfd_gen.limits import check_graph_nodes, check_npz_sizes


def read_graph_file(path: str | Path, option: str = "--samples") -> list[nx.Graph]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{option} {str(path)!r} does not exist; give an .npz of adjacency matrices or a text file "
                         f"of edge lists")
    graphs = _read_npz(path, option) if path.suffix == ".npz" else _read_edge_lists(path, option)
    if not graphs:
        raise UsageError(f"{option} {str(path)!r} holds no graphs")
    return graphs


def write_graph_npz(graphs: Sequence[nx.Graph], path: str | Path) -> Path:
    """`adjacency` [N, n, n] uint8, padded to the largest graph, and `num_nodes` [N]."""
    sizes = np.array([g.number_of_nodes() for g in graphs], dtype=np.int64)
    width = int(sizes.max(initial=0))
    adjacency = np.zeros((len(graphs), width, width), dtype=np.uint8)
    for i, graph in enumerate(graphs):
        size = sizes[i]
        adjacency[i, :size, :size] = nx.to_numpy_array(graph, nodelist=sorted(graph.nodes()), dtype=np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, adjacency=adjacency, num_nodes=sizes)
    return Path(path)


def _read_npz(path: Path, option: str) -> list[nx.Graph]:
    check_npz_sizes(path, option)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, OSError) as error:
        raise UsageError(f"{option} {str(path)!r} is not a readable .npz ({error})") from None
    for name, array in arrays.items():
        if array.ndim >= 2:
            check_graph_nodes(array.shape[-1], f"{option} {str(path)!r}, array {name!r}")
    if "adjacency" in arrays:
        stacked = arrays["adjacency"]
        if stacked.ndim != 3:
            raise UsageError(f"{option} {str(path)!r}: `adjacency` has shape {stacked.shape}; need [N, n, n]")
        sizes = arrays.get("num_nodes", np.full(len(stacked), stacked.shape[-1]))
        if sizes.shape != (len(stacked),) or (sizes < 0).any() or (sizes > stacked.shape[-1]).any():
            got = (f"shape {sizes.shape}" if sizes.shape != (len(stacked),) else
                   f"values from {sizes.min()} to {sizes.max()}")
            raise UsageError(f"{option} {str(path)!r}: `num_nodes` must be {len(stacked)} counts from 0 to "
                             f"{stacked.shape[-1]}; got {got}")
        matrices = [matrix for matrix in stacked]
        return [_graph(m, f"graph {i}", path, option, int(sizes[i]), padded=True) for i, m in enumerate(matrices)]
    if len(arrays) == 1 and next(iter(arrays.values())).ndim == 3:
        return [_graph(m, f"graph {i}", path, option) for i, m in enumerate(next(iter(arrays.values())))]
    return [_graph(m, f"array {name!r}", path, option) for name, m in arrays.items()]


def _graph(matrix: np.ndarray, name: str, path: Path, option: str, size: int | None = None,
           padded: bool = False) -> nx.Graph:
    where = f"{option} {str(path)!r}, {name}"
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise UsageError(f"{where}: shape {matrix.shape} is not a square adjacency matrix")
    if not np.isin(matrix, (0, 1)).all():
        bad = matrix[~np.isin(matrix, (0, 1))].ravel()[0].item()
        raise UsageError(f"{where}: holds the value {bad!r}; an adjacency matrix is 0 / 1")
    if not (matrix == matrix.T).all():
        raise UsageError(f"{where}: is not symmetric; graphs here are undirected")
    if np.diagonal(matrix).any():
        raise UsageError(f"{where}: has self-loops (ones on the diagonal)")
    size = matrix.shape[0] if size is None else size
    if padded and matrix[size:].any():
        raise UsageError(f"{where}: has edges beyond its num_nodes ({size})")
    graph = nx.Graph()
    graph.add_nodes_from(range(size))
    graph.add_edges_from(map(tuple, np.argwhere(np.triu(matrix[:size, :size], 1)).tolist()))
    return graph


def _read_edge_lists(path: Path, option: str) -> list[nx.Graph]:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UsageError(f"{option} {str(path)!r} is neither an .npz nor a text file of edge lists") from None
    graphs = []
    for number, block in enumerate(b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()):
        graph = nx.Graph()
        for line in block.strip().splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == "nodes" and fields[1].isdigit():
                check_graph_nodes(int(fields[1]), f"{option} {str(path)!r}, graph {number}")
                graph.add_nodes_from(range(int(fields[1])))
                continue
            if len(fields) != 2 or not all(f.lstrip("-").isdigit() for f in fields):
                raise UsageError(f"{option} {str(path)!r}, graph {number}: line {line!r} is not an edge `u v` of "
                                 f"integer node labels (or `nodes N`)")
            u, v = map(int, fields)
            if u == v:
                raise UsageError(f"{option} {str(path)!r}, graph {number}: self-loop {line!r}")
            graph.add_edge(u, v)
        check_graph_nodes(graph.number_of_nodes(), f"{option} {str(path)!r}, graph {number}")
        graphs.append(nx.convert_node_labels_to_integers(graph, ordering="sorted"))
    return graphs
