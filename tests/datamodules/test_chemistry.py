"""Molecules as graphs and back: exact round trips, charges as tokens, kekulization, validity, encoding."""

import torch

from conftest import read_qm9_smiles
from datamodules.chemistry import (
    QM9_VOCAB,
    ZINC_VOCAB,
    NotInVocabulary,
    canonical_smiles,
    encode_smiles,
    graph_to_mol,
    graph_to_smiles,
    smiles_to_graph,
)
from molecule_cases import ZINC_LIKE


def test_round_trip_is_exact_on_qm9():
    checked = 0
    for smiles in read_qm9_smiles(400):
        try:
            atoms, bonds = smiles_to_graph(smiles, QM9_VOCAB)
        except NotInVocabulary:
            continue
        assert graph_to_smiles(atoms, bonds, QM9_VOCAB) == canonical_smiles(smiles), smiles
        checked += 1
    assert checked >= 390


def test_round_trip_keeps_charges_on_zinc_like_molecules():
    for smiles in ZINC_LIKE:
        atoms, bonds = smiles_to_graph(smiles, ZINC_VOCAB)
        assert graph_to_smiles(atoms, bonds, ZINC_VOCAB) == canonical_smiles(smiles), smiles
    atoms, _ = smiles_to_graph("O=[N+]([O-])c1ccccc1", ZINC_VOCAB)
    assert {ZINC_VOCAB.tokens[i] for i in atoms.tolist()} == {"O", "N+", "O-", "C"}


def test_graphs_are_kekulized_with_three_bond_types():
    atoms, bonds = smiles_to_graph("c1ccccc1", QM9_VOCAB)
    assert sorted(bonds[torch.triu(torch.ones(6, 6, dtype=torch.bool), 1)].tolist()).count(2) == 3
    assert set(bonds.unique().tolist()) == {0, 1, 2}


def test_invalid_graph_is_none_without_correction_and_fixed_with_it():
    atoms = torch.tensor([0, 0, 0, 0, 0, 0])  # a carbon with five bonds
    bonds = torch.zeros(6, 6, dtype=torch.long)
    for j in range(1, 6):
        bonds[0, j] = bonds[j, 0] = 1
    assert graph_to_mol(atoms, bonds, QM9_VOCAB) is None
    fixed = graph_to_mol(atoms, bonds, QM9_VOCAB, correct=True)
    assert fixed is not None and max(a.GetDegree() for a in fixed.GetAtoms()) <= 4


def test_encoding_skips_and_counts_bad_smiles():
    encoded = encode_smiles(["CCO", "not a smiles", "C1CC", "[Na+].[Cl-]", "c1ccccc1", "CCCCCCCCCC"], QM9_VOCAB)
    assert encoded.smiles == ["CCO", "c1ccccc1"]
    assert encoded.skipped == {"unparsable": 2, "outside vocabulary": 2}  # Na/Cl; 10 atoms > 9
    assert encoded.atoms.shape == (2, 9) and (encoded.atoms[0, 3:] == -1).all()


def test_canonical_smiles_of_invalid_samples_is_none():
    assert [canonical_smiles(s) for s in (None, "", "  ", "None", "C(C)(C)(C)(C)C", "xx")] == [None] * 6
    assert canonical_smiles("OCC") == canonical_smiles(" CCO ") == "CCO"
