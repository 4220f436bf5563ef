"""The calibrations on tiny real inputs: MOSES's scorecard of a training sample set beside MOSES's published row,
and precision / recall of two image halves and of one half with noise; missing inputs refused plainly."""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from extractor_cases import TinyExtractor
from qgfd_gen.errors import UsageError
from sampling.benchmarks.calibration import MOSES_TRAIN, moses_calibration, prdc_calibration
from sampling.commands.bench import main as bench_main

DRUGS = ["CCN(CC)C(=O)c1ccc2ccccc2c1", "O=C(Nc1ccccc1)c1ccc2[nH]ccc2c1", "Cc1ccc(S(=O)(=O)N2CCCC2)cc1",
         "COc1ccc(-c2nc3ccccc3o2)cc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "O=C(O)c1ccc2ccccc2c1", "c1ccc2[nH]ccc2c1CCN"]


def moses_folder(tmp_path):
    for name, rows in (("train.csv.gz", DRUGS * 3), ("test.csv.gz", DRUGS[:5]), ("test_scaffolds.csv.gz", DRUGS[4:])):
        with gzip.open(tmp_path / name, "wt") as handle:
            handle.write("SMILES\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_moses_calibration_sets_our_figures_beside_moses(tmp_path, monkeypatch):
    monkeypatch.setenv("QGFD_CACHE", str(tmp_path / "cache"))
    rows = {r["metric"]: r for r in moses_calibration(str(moses_folder(tmp_path)), count=10, with_fcd=False, say=lambda _: None)}
    assert rows["validity"]["ours"] == 1.0 and rows["validity"]["moses_train"] == MOSES_TRAIN["validity"]
    assert rows["snn_test"]["difference"] == pytest.approx(rows["snn_test"]["ours"] - 0.641916)
    assert rows["logp_w1_test"]["moses_train"] is None and rows["filters"]["ours"] == 1.0
    with pytest.raises(UsageError, match=r"--count 1000: MOSES's training split has 21 molecules"):
        moses_calibration(str(tmp_path), count=1000, with_fcd=False)
    with pytest.raises(UsageError, match=r"MOSES files \['train.csv.gz', 'test.csv.gz', 'test_scaffolds.csv.gz'\]"):
        moses_calibration(str(tmp_path / "absent"))


def image_zip(path, count: int) -> str:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(count):
            buffer = io.BytesIO()
            Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(buffer, format="PNG")
            archive.writestr(f"train/{index % 2}/{index:03d}.png", buffer.getvalue())
    return str(path)


def test_prdc_calibration_scores_halves_then_noise(tmp_path):
    rows = prdc_calibration(image_zip(tmp_path / "images.zip", 40), per_half=20, noise=(0.5,), batch=8,
                            feature_extractor=TinyExtractor(), say=lambda _: None)
    assert [r["noise_sigma"] for r in rows] == [0.0, 0.5]
    assert all(0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and r["fid"] >= 0 for r in rows)
    with pytest.raises(UsageError, match=r"--count 50: .* holds 40 images"):
        prdc_calibration(str(tmp_path / "images.zip"), per_half=25, feature_extractor=TinyExtractor())


def test_the_moses_calibration_suite_writes_its_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("QGFD_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "calibration.json"
    assert bench_main(["moses-calibration", "--data-dir", str(moses_folder(tmp_path)), "--count", "8", "--no-fcd",
                       "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["meta"]["suite"] == "moses-calibration" and any(r["metric"] == "intdiv1" for r in written["rows"])
