"""NSPDK MMD between generated and reference molecules, the graph-level distance GDSS and GruM report.

The Neighborhood Subgraph Pairwise Distance Kernel (Costa & De Grave 2010), normalised as EDeN does it:
a graph's features are the pairs of rooted neighbourhood subgraphs of radius r <= 3 whose roots lie at
distance d <= 3 apart, each pair named by (r, d, the two subgraphs' invariant codes); the counts of each
(r, d) block are normalised to unit length, then the whole vector. (The values are this implementation's:
compare them between runs here, not with the numbers of papers that used EDeN's.) So k(G, G')
= <phi(G), phi(G')> is 1 for isomorphic graphs and the biased MMD^2 = ||mean phi(generated) - mean
phi(reference)||^2, from the mean feature vectors alone. A subgraph's code is exact up to the usual
distance-labelling approximation: each node is named by its element, its distance to the root and the
sorted (distance, element) list of the subgraph's nodes seen from it, and the code is the sorted list of
those names and of the bonds between them. Molecules are graphs of elements and bond types, hydrogens
implicit. (GraKel's NSPDK was tried first: it averages per-level normalised kernels, so two copies of a
small molecule score 0.8 with each other; it is not used.)
"""

from __future__ import annotations

from collections import Counter, deque
from math import sqrt
from typing import Optional, Sequence

from rdkit import Chem

NSPDK_RADIUS, NSPDK_DISTANCE = 3, 3
NSPDK_REFERENCE_SIZE = 1000  # the test molecules the generated ones are compared with (the first ones)


def _distances(neighbours: list[list[int]], limit: int) -> list[dict[int, int]]:
    """Breadth-first distances from every node, up to `limit`."""
    found = []
    for root in range(len(neighbours)):
        seen, queue = {root: 0}, deque([root])
        while queue:
            node = queue.popleft()
            if seen[node] < limit:
                for other in neighbours[node]:
                    if other not in seen:
                        seen[other] = seen[node] + 1
                        queue.append(other)
        found.append(seen)
    return found


def nspdk_features(mol: Chem.Mol, radius: int = NSPDK_RADIUS, distance: int = NSPDK_DISTANCE) -> dict:
    """phi(G): feature -> weight, unit length overall and within each (r, d) block."""
    labels = [atom.GetSymbol() for atom in mol.GetAtoms()]
    neighbours: list[list[int]] = [[] for _ in labels]
    bonds = {}
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        neighbours[i].append(j)
        neighbours[j].append(i)
        bonds[(min(i, j), max(i, j))] = str(bond.GetBondType())
    far = _distances(neighbours, max(2 * radius, distance))  # two nodes of one subgraph are <= 2r apart
    codes = [[_subgraph_code(root, r, far, labels, bonds) for r in range(radius + 1)] for root in range(len(labels))]
    blocks: dict[tuple[int, int], Counter] = {}
    for u in range(len(labels)):
        for v, d in far[u].items():
            if v < u or d > distance:
                continue
            for r in range(radius + 1):
                pair = tuple(sorted((codes[u][r], codes[v][r])))
                blocks.setdefault((r, d), Counter())[pair] += 1
    features = {}
    for key, counts in blocks.items():
        norm = sqrt(sum(c * c for c in counts.values()))
        features.update({(key, pair): c / norm for pair, c in counts.items()})
    total = sqrt(sum(w * w for w in features.values()))
    return {f: w / total for f, w in features.items()}


def _subgraph_code(root: int, r: int, far: list[dict[int, int]], labels: list[str], bonds: dict) -> int:
    inside = [node for node, d in far[root].items() if d <= r]
    names = {node: hash((labels[node], far[root][node],
                         tuple(sorted((far[node].get(other, -1), labels[other]) for other in inside)))) for node in inside}
    members = set(inside)
    edges = sorted(tuple(sorted((names[i], names[j]))) + (kind,) for (i, j), kind in bonds.items()
                   if i in members and j in members)
    return hash((tuple(sorted(names.values())), tuple(edges)))


def _mean_features(mols: Sequence[Optional[Chem.Mol]]) -> tuple[dict, int]:
    total: dict = {}
    count = 0
    for mol in mols:
        if mol is None or mol.GetNumAtoms() == 0:
            continue
        count += 1
        for feature, weight in nspdk_features(mol).items():
            total[feature] = total.get(feature, 0.0) + weight
    return {f: w / count for f, w in total.items()} if count else {}, count


def nspdk_mmd(generated: Sequence[Optional[Chem.Mol]], reference: Sequence[Optional[Chem.Mol]]) -> Optional[float]:
    """The biased MMD^2 between two sets of molecules under the normalised NSPDK (None for an empty side)."""
    ours, n = _mean_features(generated)
    theirs, m = _mean_features(reference)
    if not n or not m:
        return None
    return float(sum((ours.get(f, 0.0) - theirs.get(f, 0.0)) ** 2 for f in set(ours) | set(theirs)))
