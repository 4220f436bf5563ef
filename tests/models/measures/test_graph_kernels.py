"""The NSPDK MMD on known values, and ordering sets by how alike they are."""

import pytest
from rdkit import Chem

from conftest import read_qm9_smiles
from models.measures.graph_kernels import nspdk_features, nspdk_mmd


def mols(smiles):
    return [Chem.MolFromSmiles(s) for s in smiles]


def kernel(a: str, b: str) -> float:
    fa, fb = nspdk_features(Chem.MolFromSmiles(a)), nspdk_features(Chem.MolFromSmiles(b))
    return sum(w * fb.get(f, 0.0) for f, w in fa.items())


def test_the_kernel_on_known_values():
    assert kernel("CCO", "CCO") == pytest.approx(1.0)
    assert kernel("CCO", "OCC") == pytest.approx(1.0)  # the same graph with its atoms in another order
    assert kernel("c1ccccc1O", "Oc1ccccc1") == pytest.approx(1.0)
    # single atoms: one feature in each of the four radius blocks at distance 0, weight 1/2 each; no feature
    # shared between carbon and oxygen, so the kernel is 0 and the MMD^2 of {C} against {O} is 1/4 * 8 = 2
    assert kernel("C", "O") == 0.0
    assert nspdk_mmd(mols(["C"]), mols(["O"])) == pytest.approx(2.0)
    assert 0 < kernel("CCO", "CCN") < kernel("CCCO", "CCCN") < 1  # longer shared chains, more shared pairs


def test_nspdk_mmd_orders_sets_by_how_alike_they_are():
    qm9 = mols(read_qm9_smiles(400, offset=1000))
    first, second = qm9[:200], qm9[200:]
    alkanes = mols(["C" * n for n in range(2, 9)] * 20)
    assert nspdk_mmd(first, first) == pytest.approx(0.0, abs=1e-12)
    same_kind, other_kind = nspdk_mmd(first, second), nspdk_mmd(alkanes, second)
    assert 0 < same_kind < 0.1 < other_kind
    assert nspdk_mmd(second, alkanes) == pytest.approx(other_kind)  # symmetric
    assert nspdk_mmd([None] + first, second) == pytest.approx(same_kind)  # invalid samples are not molecules
    assert nspdk_mmd([None], second) is None
