"""Precision, recall, density and coverage on feature sets whose answers are known, and through ImageQuality and
qgfd-eval images on image files."""

from __future__ import annotations

import json

import pytest
import torch

from extractor_cases import TinyExtractor
from models.measures.image_metrics import ImageQuality
from models.measures.precision_recall import kth_neighbour_radii, precision_recall_density_coverage


def gaussian(count: int, seed: int, dim: int = 6) -> torch.Tensor:
    return torch.randn(count, dim, generator=torch.Generator().manual_seed(seed))


def test_a_set_against_itself_and_against_a_far_set():
    real = gaussian(300, 0)
    same = precision_recall_density_coverage(real, real)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0 and same["density"] >= 1.0
    far = precision_recall_density_coverage(real, real + 50.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_two_draws_of_one_distribution_score_high_and_a_collapsed_one_loses_recall():
    real, fake = gaussian(800, 1), gaussian(800, 2)
    fair = precision_recall_density_coverage(real, fake)
    assert fair["precision"] > 0.85 and fair["recall"] > 0.85 and 0.8 < fair["density"] < 1.2 and fair["coverage"] > 0.85
    collapsed = 0.1 * gaussian(800, 3)  # every fake near the mode: good images of one kind
    narrow = precision_recall_density_coverage(real, collapsed)
    assert narrow["precision"] > 0.95 and narrow["recall"] < 0.3 and narrow["coverage"] < 0.3


def test_radii_by_hand_and_undefined_cases():
    points = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    assert kth_neighbour_radii(points, 1).tolist() == [1.0, 1.0, 2.0, 3.0]
    assert kth_neighbour_radii(points, 2).tolist() == [3.0, 2.0, 3.0, 5.0]
    assert precision_recall_density_coverage(points, points[:3])["precision"] is None  # 3 fakes, k = 3
    with pytest.raises(ValueError, match=r"features of shapes \(4, 1\) and \(4, 2\)"):
        precision_recall_density_coverage(points, torch.ones(4, 2))


def test_image_quality_reports_them_without_kid_when_kid_is_not_asked():
    extractor = TinyExtractor()
    images = torch.rand(24, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    quality = ImageQuality(extractor, want_fid=True, want_is=False, want_prdc=True, kid_subset_size=10)
    quality.update_real(images)
    quality.update_fake(images)
    scores = quality.compute()
    assert "kid" not in scores and scores["precision"] == 1.0 and scores["recall"] == 1.0 and scores["prdc_k"] == 3


def test_qgfd_eval_scores_precision_and_recall_of_image_files(tmp_path):
    import numpy as np

    from sampling.commands.evaluate import main as eval_main

    extractor = tmp_path / "tiny.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    pictures = (np.random.default_rng(0).random((16, 8, 8, 3)) * 255).astype(np.uint8)
    np.savez(tmp_path / "a.npz", images=pictures)
    out = tmp_path / "scores.json"
    assert eval_main(["images", "--feature-extractor", str(extractor), "--metrics", "fid,prdc", "--samples",
                      str(tmp_path / "a.npz"), "--reference", str(tmp_path / "a.npz"), "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0 and scores["coverage"] == 1.0 and "kid" not in scores
