"""Graph-set metrics as the field computes them (GraphRNN's definitions, SPECTRE's and GRAN's kernels):

- MMD^2 between the generated and the test graphs of three per-graph histograms: degrees, clustering
  coefficients (100 bins on [0, 1]) and normalised-Laplacian eigenvalues (200 bins on [-1e-5, 2]); and of the
  graphs' mean 4-node orbit counts (`graph_orbits`, the statistic ORCA gives those papers), compared unnormalised
  with sigma 30 as they do. Each histogram
  is normalised to a distribution, and MMD^2 = mean k(X, X') + mean k(Y, Y') - 2 mean k(X, Y) over all pairs
  (diagonal included, as those papers do), with the Gaussian total-variation kernel
  k = exp(-TV^2 / (2 sigma^2)), TV = sum |x - y| / 2 (sigma 1; clustering 0.1), or the Gaussian EMD kernel of
  GraphRNN (`kernel="emd"`: the 1-D earth mover's distance, bin index as ground distance; clustering scaled by
  its bin count).
- the ratio of each MMD^2 to that of the training graphs against the test graphs (as DeFoG reports; undefined,
  NaN, where that is 0, as clustering on trees) and their mean over the defined ones;
- V.U.N.: valid (planar: connected and planar; tree: a tree), unique (not isomorphic to an earlier sample),
  novel (isomorphic to no training graph), and the share that is all three;
- the two halves of validity apart, to say why a sample is invalid: the share `connected` (one component) and
  the share `planar` (planar: a planar embedding exists) or `acyclic` (tree: no cycle, a forest).
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, Iterable

import networkx as nx
import numpy as np

from models.measures.graph_orbits import mean_orbit_counts

SIGMA = {"degree": 1.0, "clustering": 0.1, "orbit": 30.0, "spectrum": 1.0}
KERNELS = ("tv", "emd")
# what a generated set is judged by, in the order sweeps, validation logs and summaries give them
HEADLINE_SCORES = ("vun", "valid", "unique", "novel", "degree_mmd", "clustering_mmd", "orbit_mmd", "spectrum_mmd",
                   "mean_ratio")


def degree_histogram(graph: nx.Graph) -> np.ndarray:
    return np.asarray(nx.degree_histogram(graph), dtype=float)


def clustering_histogram(graph: nx.Graph, bins: int = 100) -> np.ndarray:
    return np.histogram(list(nx.clustering(graph).values()), bins=bins, range=(0.0, 1.0))[0].astype(float)


def spectrum_histogram(graph: nx.Graph, bins: int = 200) -> np.ndarray:
    if graph.number_of_nodes() == 0:
        return np.zeros(bins)
    eigenvalues = np.linalg.eigvalsh(nx.normalized_laplacian_matrix(graph).toarray())
    return np.histogram(eigenvalues, bins=bins, range=(-1e-5, 2.0))[0].astype(float)


HISTOGRAMS: dict[str, Callable[[nx.Graph], np.ndarray]] = {
    "degree": degree_histogram, "clustering": clustering_histogram, "spectrum": spectrum_histogram}
STATISTICS = ("degree", "clustering", "orbit", "spectrum")  # each has an `_mmd` and a `_ratio` score


def _distributions(histograms: list[np.ndarray], width: int) -> np.ndarray:
    rows = np.zeros((len(histograms), width))
    for i, h in enumerate(histograms):
        rows[i, : len(h)] = h
    return rows / (rows.sum(1, keepdims=True) + 1e-6)


def _kernel(x: np.ndarray, y: np.ndarray, sigma: float, kind: str, scaling: float) -> np.ndarray:
    """k between every row of x and every row of y ("l2": the Euclidean distance, for vectors that are not
    distributions)."""
    if kind == "tv":
        distance = np.abs(x[:, None, :] - y[None, :, :]).sum(-1) / 2
    elif kind == "emd":  # 1-D EMD: the L1 distance between the cumulative distributions
        distance = np.abs(np.cumsum(x, 1)[:, None, :] - np.cumsum(y, 1)[None, :, :]).sum(-1) / scaling
    elif kind == "l2":
        distance = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    else:
        raise ValueError(f"kernel={kind!r}; choose one of {', '.join(KERNELS)}")
    return np.exp(-distance**2 / (2 * sigma**2))


def _mmd2_of_rows(x: np.ndarray, y: np.ndarray, sigma: float, kind: str, scaling: float = 1.0) -> float:
    """The biased MMD^2 between the rows of x and of y, all pairs (diagonal included)."""
    value = (_kernel(x, x, sigma, kind, scaling).mean() + _kernel(y, y, sigma, kind, scaling).mean()
             - 2 * _kernel(x, y, sigma, kind, scaling).mean())
    return float(abs(value))


def mmd2(first: list[np.ndarray], second: list[np.ndarray], sigma: float = 1.0, kernel: str = "tv",
         scaling: float = 1.0) -> float:
    """MMD^2 between two sets of histograms (normalised to distributions, zero-padded to one width)."""
    if not first or not second:
        return float("nan")
    if kernel not in KERNELS:  # "l2" is the orbit vectors' kernel, not a histogram's
        raise ValueError(f"kernel={kernel!r}; choose one of {', '.join(KERNELS)}")
    width = max(len(h) for h in [*first, *second])
    return _mmd2_of_rows(_distributions(first, width), _distributions(second, width), sigma, kernel, scaling)


def orbit_mmd2(first: list[np.ndarray], second: list[np.ndarray], kernel: str = "tv") -> float:
    """MMD^2 between two sets of mean orbit-count vectors, compared as they are (not normalised), sigma 30: the
    Gaussian TV kernel as SPECTRE and GRAN compute it, or GraphRNN's Gaussian of the Euclidean distance (`emd`)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r}; choose one of {', '.join(KERNELS)}")
    if not first or not second:
        return float("nan")
    return _mmd2_of_rows(np.stack(first), np.stack(second), SIGMA["orbit"], "tv" if kernel == "tv" else "l2")


def graph_mmds(generated: list[nx.Graph], reference: list[nx.Graph], kernel: str = "tv") -> dict[str, float]:
    """MMD^2 of the degree, clustering, 4-node orbit and Laplacian-spectrum statistics, generated against reference.

    Args:
        generated: the generated graphs (empty ones are left out, as the field does).
        reference: the graphs compared with (the benchmark's test graphs).
        kernel: ``tv`` (Gaussian total variation: SPECTRE, DeFoG) or ``emd`` (Gaussian EMD: GraphRNN).

    Returns:
        ``degree_mmd``, ``clustering_mmd``, ``orbit_mmd``, ``spectrum_mmd``.
    """
    generated = [g for g in generated if g.number_of_nodes() > 0]
    out = {"orbit_mmd": orbit_mmd2([mean_orbit_counts(g) for g in generated],
                                   [mean_orbit_counts(g) for g in reference], kernel)}
    for name, histogram in HISTOGRAMS.items():
        scaling = 100.0 if (kernel == "emd" and name == "clustering") else 1.0
        out[f"{name}_mmd"] = mmd2([histogram(g) for g in generated], [histogram(g) for g in reference],
                                  SIGMA[name], kernel, scaling)
    return {f"{name}_mmd": out[f"{name}_mmd"] for name in STATISTICS}  # the field's column order


def is_valid(graph: nx.Graph, kind: str) -> bool:
    """planar: connected and planar; tree: connected and acyclic (a tree); the empty graph is neither."""
    return all(validity_parts(graph, kind).values())


VALIDITY_PARTS = {"planar": "planar", "tree": "acyclic"}  # beside `connected`: the other half of each kind's validity


def validity_parts(graph: nx.Graph, kind: str) -> dict[str, bool]:
    """The two conditions a valid graph of `kind` meets, apart: valid = both (for a non-empty graph)."""
    if kind not in VALIDITY_PARTS:
        raise ValueError(f"kind={kind!r}; use 'planar' or 'tree'")
    if graph.number_of_nodes() == 0:
        return {"connected": False, VALIDITY_PARTS[kind]: False}
    other = nx.check_planarity(graph)[0] if kind == "planar" else nx.is_forest(graph)
    return {"connected": nx.is_connected(graph), VALIDITY_PARTS[kind]: other}


class IsomorphismIndex:
    """Graphs bucketed by their Weisfeiler-Lehman hash, so that an isomorphism test runs only within a bucket."""

    def __init__(self, graphs: Iterable[nx.Graph] = ()):
        self.buckets: dict[str, list[nx.Graph]] = {}
        for graph in graphs:
            self.add(graph)

    @staticmethod
    def key(graph: nx.Graph) -> str:
        with warnings.catch_warnings():  # networkx 3.5 warns that these hashes changed; they only bucket within a run
            warnings.filterwarnings("ignore", message="The hashes produced for graphs without")
            return nx.weisfeiler_lehman_graph_hash(graph, iterations=3)

    def contains(self, graph: nx.Graph) -> bool:
        return any(nx.is_isomorphic(graph, other) for other in self.buckets.get(self.key(graph), ()))

    def add(self, graph: nx.Graph) -> None:
        self.buckets.setdefault(self.key(graph), []).append(graph)


def vun(generated: list[nx.Graph], train: list[nx.Graph], kind: str) -> dict[str, float]:
    """The shares of valid, unique (no isomorphic earlier sample) and novel (no isomorphic training graph) samples,
    of samples that are all three (V.U.N.), and of the two halves of validity (`validity_parts`).

    Args:
        generated: the generated graphs.
        train: the training graphs.
        kind: ``planar`` or ``tree``: which graphs are valid.

    Example:
        >>> path = nx.path_graph(5)
        >>> vun([path, nx.cycle_graph(5)], [nx.star_graph(4)], "tree")["vun"]
        0.5
    """
    training, seen = IsomorphismIndex(train), IsomorphismIndex()
    valid = unique = novel = all_three = 0
    parts: dict[str, int] = {}
    for graph in generated:
        checks = validity_parts(graph, kind)
        is_ok = all(checks.values())
        for name, holds in checks.items():
            parts[name] = parts.get(name, 0) + holds
        is_new = not seen.contains(graph)
        if is_new:
            seen.add(graph)
        is_novel = not training.contains(graph)
        valid, unique, novel = valid + is_ok, unique + is_new, novel + is_novel
        all_three += is_ok and is_new and is_novel
    count = max(len(generated), 1)
    return {"valid": valid / count, "unique": unique / count, "novel": novel / count, "vun": all_three / count,
            **{name: n / count for name, n in parts.items()}}


class GraphReference:
    """The training and test graphs a generated set is scored against. The training graphs' own MMD against the
    test graphs (each ratio's denominator) is a constant of the data set: computed once, on first use, not for
    every scored set (about four times the cost of scoring 40 samples)."""

    def __init__(self, train: list[nx.Graph], test: list[nx.Graph], kind: str, kernel: str = "tv"):
        self.train, self.test, self.kind, self.kernel = train, test, kind, kernel

    @functools.cached_property
    def baseline(self) -> dict[str, float]:
        return graph_mmds(self.train, self.test, self.kernel)

    def score(self, generated: list[nx.Graph]) -> dict[str, float]:
        """The MMDs against the test graphs, their ratios to train-against-test, and V.U.N."""
        scores = graph_mmds(generated, self.test, self.kernel)
        for name, value in list(scores.items()):
            base = self.baseline[name]
            scores[name.replace("_mmd", "_ratio")] = value / base if base > 0 else float("nan")
        finite = [scores[f"{n}_ratio"] for n in STATISTICS if np.isfinite(scores[f"{n}_ratio"])]
        scores["mean_ratio"] = float(np.mean(finite)) if finite else float("nan")  # trees: clustering is 0 in both
        return {**scores, **vun(generated, self.train, self.kind), "samples": len(generated)}


def graph_scores(generated: list[nx.Graph], train: list[nx.Graph], test: list[nx.Graph], kind: str,
                 kernel: str = "tv") -> dict[str, float]:
    """One set of generated graphs scored as the field scores it: V.U.N. and the MMDs against the test graphs, with
    their ratios to the training graphs' own MMDs.

    Args:
        generated: the generated graphs.
        train: the training graphs (novelty; the ratios' denominators).
        test: the test graphs (the MMDs).
        kind: ``planar`` or ``tree``.
        kernel: the MMD kernel, ``tv`` or ``emd``.

    Returns:
        The V.U.N. shares, the four MMDs, their ratios and their mean ratio. A caller scoring several sets keeps one
        `GraphReference` instead, so the reference statistics are computed once.
    """
    return GraphReference(train, test, kind, kernel).score(generated)
