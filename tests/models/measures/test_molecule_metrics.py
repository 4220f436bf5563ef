"""Quality metrics: molecule validity / uniqueness / novelty on known answers, FCD, FID and IS."""

import math

import pytest
import torch

from conftest import read_qm9_smiles
from extractor_cases import TinyExtractor
from datamodules.chemistry import QM9_VOCAB, decode_raw_graphs, raw_mol_from_smiles
from models.measures.image_metrics import ImageQuality
from models.measures.molecule_metrics import MoleculeMetrics, fragment_scores, frechet_chemnet_distance, score_molecules


# ------------------------------------------------------------------------------------------ molecule metrics
def test_molecule_metrics_on_known_answers():
    samples = ["CCO", "OCC", "C(C)(C)(C)(C)C", "", None, "None", "c1ccccc1", "CCN", "C1=CC=CC=C1", "F(F)F"]
    # valid: CCO, OCC (= CCO), benzene, CCN, kekulé benzene (= benzene); invalid: pentavalent C, empty,
    # None, 'None', trivalent F
    scores = score_molecules(samples, train_smiles=["NCC", "CCCC"], with_fcd=False)
    assert scores["num_samples"] == 10 and scores["num_valid"] == 5
    assert scores["validity"] == pytest.approx(0.5)
    assert scores["uniqueness"] == pytest.approx(3 / 5)  # CCO, benzene, CCN
    assert scores["novelty"] == pytest.approx(2 / 3)  # CCN is in the training set (written NCC)


def test_connected_share_and_largest_fragment_validity_on_known_answers():
    smiles = ["CCO", "CCO.C", "C(C)(C)(C)(C)C.CCCCCCCC", "CC.C(C)(C)(C)(C)C", "", None, "C1CC"]
    # connected: CCO; CCO.C has a stray methane; the pentavalent carbon is the smaller piece in the 3rd (largest
    # piece octane: valid) and the larger in the 4th (invalid); empty, None and an unclosed ring count as neither
    scores = fragment_scores([raw_mol_from_smiles(s) for s in smiles])
    assert scores["connected"] == pytest.approx(1 / 7)
    assert scores["largest_fragment_validity"] == pytest.approx(3 / 7)


def test_fragments_of_generated_graphs():
    atoms = torch.tensor([[0, 0, 2, 0, -1], [0, 0, 0, -1, -1]])  # C C O C (+padding); C C C
    bonds = torch.zeros(2, 5, 5, dtype=torch.long)
    bonds[0, 0, 1] = bonds[0, 1, 0] = bonds[0, 1, 2] = bonds[0, 2, 1] = 1  # ethanol and a lone carbon
    bonds[1, 0, 1] = bonds[1, 1, 0] = bonds[1, 1, 2] = bonds[1, 2, 1] = 1  # propane
    scores = fragment_scores(decode_raw_graphs(atoms, bonds, QM9_VOCAB))
    assert scores == {"connected": 0.5, "largest_fragment_validity": 1.0}


def test_molecule_metric_accumulates_over_updates():
    metric = MoleculeMetrics(["CCO"])
    metric.update(["CCO", "CCN"])
    metric.update(["CCN", "xx"])
    result = metric.compute()
    assert float(result["validity"]) == pytest.approx(0.75)
    assert float(result["uniqueness"]) == pytest.approx(2 / 3)
    assert float(result["novelty"]) == pytest.approx(0.5)


def test_fcd_of_a_set_against_itself_is_about_zero():
    smiles = read_qm9_smiles(60)
    assert abs(frechet_chemnet_distance(smiles, smiles)) < 1e-2
    assert frechet_chemnet_distance(smiles[:30], ["CCCCCCCCC", "c1ccccc1Cl", "CC(=O)O"] * 10) > 1.0


# ------------------------------------------------------------------------------------------ image metrics
# ------------------------------------------------------------------------------------------ image metrics
def test_fid_and_is_with_a_custom_feature_extractor():
    real = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    quality = ImageQuality(TinyExtractor())
    quality.update_real(real)
    quality.update_fake(real)
    same = quality.compute()
    assert abs(same["fid"]) < 1e-3 and same["is"] >= 1.0
    assert math.isfinite(same["is_std"]) and same["is_std"] > 0  # the spread over 10 splits, not NaN
    quality.reset_fake()
    quality.update_fake(torch.zeros(64, 3, 8, 8) + torch.rand(64, 3, 8, 8) * 0.1)
    assert quality.compute()["fid"] > 10 * max(abs(same["fid"]), 1e-4)
    cached = quality.real_state()  # real statistics survive the fake reset and can be cached
    assert int(cached["num"]) == 64
