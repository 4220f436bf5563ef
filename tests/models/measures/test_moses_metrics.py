"""MOSES's metrics on hand-made molecules with known answers."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from rdkit import Chem

from models.measures.moses_metrics import (MosesReference, cosine_similarity, failed_filters, moses_scores,
                                           passes_filters, scaffold_counts)

DRUG_LIKE = ["CCN(CC)C(=O)c1ccc2ccccc2c1", "O=C(Nc1ccccc1)c1ccc2[nH]ccc2c1", "Cc1ccc(S(=O)(=O)N2CCCC2)cc1",
             "COc1ccc(-c2nc3ccccc3o2)cc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1"]


def test_a_set_against_itself_scores_one():
    scores = moses_scores(DRUG_LIKE, {"test": MosesReference(DRUG_LIKE)})
    assert scores["snn_test"] == pytest.approx(1.0) and scores["frag_test"] == pytest.approx(1.0)
    assert scores["scaf_test"] == pytest.approx(1.0)
    assert all(scores[f"{p}_w1_test"] == pytest.approx(0.0, abs=1e-12) for p in ("logp", "sa", "qed", "weight"))
    assert 0 < scores["intdiv1"] < 1 and scores["intdiv2"] <= scores["intdiv1"] + 1e-12


def test_one_molecule_repeated_has_no_internal_diversity():
    scores = moses_scores(["c1ccccc1CCO"] * 7, {})
    assert scores["intdiv1"] == pytest.approx(0.0, abs=1e-12) and scores["intdiv2"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("smiles, passes", [
    ("S=C1SC(=Cc2ccccc2)C(=O)N1", False),  # 5-benzylidene rhodanine: PAINS ene_rhod_A
    ("O=C1C=CC(=O)C=C1", False),  # quinone: PAINS quinone_A
    ("CCC=O", False),  # aldehyde: MCF
    ("C[N+](C)(C)C", False),  # charged
    ("C1CCCCCCC1", False),  # an eight-membered ring
    ("CCCI", False),  # iodine is not an allowed atom
    ("CC(C)Cc1ccc(C(C)C(=O)O)cc1", True),  # ibuprofen
])
def test_filters_on_known_hits_and_a_clean_drug(smiles, passes):
    mol = Chem.MolFromSmiles(smiles)
    assert passes_filters(mol) is passes and (not failed_filters(mol)) is passes


def test_the_filters_share_is_told_apart_by_the_filter_each_molecule_fails():
    # a macrocycle, an aldehyde, a charged aldehyde, ibuprofen: half pass no filter, one fails two
    scores = moses_scores(["C1CCCCCCC1", "CCC=O", "[NH3+]CC=O", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "not a molecule"], {})
    assert scores["filters"] == pytest.approx(0.25)
    assert scores["filter_failures"] == {"valid": 4, "failing": 3, "by_filter": {
        "MCF ALDEHYDE": 2, "ring of 8+ atoms": 1, "charged atom": 1}}


def test_cosine_similarity_and_scaffolds_by_hand():
    assert cosine_similarity(Counter(a=1, b=1), Counter(a=1)) == pytest.approx(2 ** -0.5)
    assert cosine_similarity(Counter(), Counter(a=1)) is None
    # ibuprofen has one ring: its scaffold is not counted (MOSES counts scaffolds of two or more rings)
    assert scaffold_counts([Chem.MolFromSmiles("CC(C)Cc1ccc(C(C)C(=O)O)cc1")]) == Counter()
    assert scaffold_counts([Chem.MolFromSmiles("COc1ccc(-c2nc3ccccc3o2)cc1")]) == Counter({"c1ccc(-c2nc3ccccc3o2)cc1": 1})


def test_undefined_metrics_are_none_with_a_note():
    scores = moses_scores(["not a molecule", None], {"test": MosesReference(DRUG_LIKE)})
    assert scores["filters"] is None and scores["snn_test"] is None and "no valid sample" in scores["notes"]["snn_test"]
    few = moses_scores(DRUG_LIKE, {})
    assert few["unique_1k"] is None and few["notes"]["unique_1k"] == "undefined: needs 1000 valid samples, got 5"
    with pytest.raises(ValueError, match="none of the 1 SMILES parsed"):
        MosesReference(["xyz"])


def test_a_reference_survives_its_plain_array_form():
    reference = MosesReference(DRUG_LIKE)
    again = MosesReference.from_arrays({k: np.asarray(v) for k, v in reference.arrays().items()})
    assert again.size == 5 and again.fragments == reference.fragments and again.scaffolds == reference.scaffolds
    assert (again.fingerprints == reference.fingerprints).all()
    assert all(np.array_equal(again.properties[k], reference.properties[k]) for k in reference.properties)


def test_a_sample_longer_than_the_workbench_allows_is_invalid_here_too():
    from datamodules.chemistry import MAX_SMILES_CHARS
    from models.measures.moses_metrics import valid_mols

    assert valid_mols(["C" * (MAX_SMILES_CHARS + 1), "CCO", "None", ""]) and len(valid_mols(["C" * 600, "CCO"])) == 1
