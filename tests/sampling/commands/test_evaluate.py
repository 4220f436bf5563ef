"""qgfd-eval: scoring a SMILES file, image and molecule sweeps, and the offline Inception path."""

import csv
import json
import math

import pytest
import torch
from PIL import Image

from conftest import read_qm9_smiles
from sampling.commands.evaluate import main as eval_main
from extractor_cases import TinyExtractor

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["sampling.evaluate_images", "sampling.evaluate_molecules", "sampling.results", "sampling.sweep",
          "sampling.moses_scoring"]


def test_scoring_a_smiles_file(tmp_path):
    samples, train, test = tmp_path / "s.smi", tmp_path / "train.smi", tmp_path / "test.smi"
    samples.write_text("CCO\n\nNone\nCCO\nc1ccccc1\nC(C)(C)(C)(C)C\n")
    train.write_text("CCO\nCCC\n")
    test.write_text("\n".join(read_qm9_smiles(20, offset=100)) + "\n")
    out = tmp_path / "scores.json"
    assert eval_main(["molecules", "--samples", str(samples), "--train", str(train), "--test", str(test), "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["num_samples"] == 6 and scores["validity"] == pytest.approx(0.5)
    assert scores["uniqueness"] == pytest.approx(2 / 3) and scores["novelty"] == pytest.approx(0.5)
    assert math.isfinite(scores["fcd"]) and scores["fcd"] > 0
    assert scores["connected"] == pytest.approx(4 / 6)  # one piece, valid or not: the pentavalent carbon counts
    assert scores["largest_fragment_validity"] == pytest.approx(0.5)
    assert scores["nspdk_mmd"] > 0
    assert scores["intdiv1"] > 0 and "snn_test" not in scores  # diversity always; MOSES's scorecard on request


def test_scoring_a_smiles_file_with_moses_scorecard(tmp_path, monkeypatch):
    monkeypatch.setenv("QGFD_CACHE", str(tmp_path / "cache"))
    samples, train, test, scaffolds = (tmp_path / name for name in ("s.smi", "train.smi", "test.smi", "sf.smi"))
    drugs = ["CCN(CC)C(=O)c1ccc2ccccc2c1", "O=C(Nc1ccccc1)c1ccc2[nH]ccc2c1", "COc1ccc(-c2nc3ccccc3o2)cc1"]
    samples.write_text("\n".join(drugs + ["CCC=O", "xyz"]) + "\n")
    train.write_text("CCO\n")
    test.write_text("\n".join(drugs) + "\n")
    scaffolds.write_text("Cc1ccc(S(=O)(=O)N2CCCC2)cc1\nc1ccc2ccccc2c1\n")
    out = tmp_path / "scores.json"
    argv = ["molecules", "--samples", str(samples), "--train", str(train), "--test", str(test), "--no-fcd", "--no-nspdk"]
    assert eval_main(argv + ["--test-sf", str(scaffolds), "--json", str(out)]) == 2  # --test-sf without --moses
    assert eval_main(["molecules", "--samples", str(samples), "--train", str(train), "--moses", "--json", str(out)]) == 2
    assert not out.exists()
    assert eval_main(argv + ["--moses", "--test-sf", str(scaffolds), "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["filters"] == pytest.approx(3 / 4)  # the aldehyde fails MCF; the invalid sample is not counted
    assert scores["filter_failures"] == {"valid": 4, "failing": 1, "by_filter": {"MCF ALDEHYDE": 1}}
    assert scores["snn_test"] > scores["snn_testsf"] and scores["frag_test"] > 0.9
    assert scores["moses_references"] == {"test": 3, "testsf": 2} and scores["test_sf_file"] == str(scaffolds)
    assert scores["unique_1k"] is None and "needs 1000 valid samples" in scores["moses_notes"]["unique_1k"]
    assert len(list((tmp_path / "cache" / "moses-references").glob("*.npz"))) == 2


def test_image_sweep_writes_results_and_early_exit_saves_evaluations(image_checkpoint, tmp_path):
    extractor = tmp_path / "extractor.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    out = tmp_path / "sweep"
    argv = ["images", "--ckpt", str(image_checkpoint), "--num-samples", "16", "--steps", "5,10", "--metrics", "fid,is,nll",
            "--feature-extractor", str(extractor), "--exit-levels", "1.5", "--qgfd-tol", "1e-2", "--qgfd-max-iterations", "20",
            "--nll-images", "4", "--nll-timesteps", "5", "--batch-size", "8", "--out", str(out)]
    assert eval_main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["setting"], r["sampler_steps"]) for r in rows] == [
        ("fixed", 5), ("fixed", 10), ("qgfd-tol=0.01", 5), ("qgfd-tol=0.01", 10), ("exit-tol=1.5", 5), ("exit-tol=1.5", 10)]
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 6
    assert Image.open(out / "quality_vs_steps.png").size[0] > 100
    fixed10 = next(r for r in rows if r["setting"] == "fixed" and r["sampler_steps"] == 10)
    exit10 = next(r for r in rows if r["setting"] == "exit-tol=1.5" and r["sampler_steps"] == 10)
    tol10 = next(r for r in rows if r["setting"] == "qgfd-tol=0.01" and r["sampler_steps"] == 10)
    assert exit10["network_evaluations"] < fixed10["network_evaluations"] == 10
    assert exit10["saved_network_evaluations"] > 0
    assert fixed10["qgfd_iterations"] == 6.0 and tol10["qgfd_iterations"] < 20
    for row in rows:
        for key in ("sampler", "network_evaluations", "qgfd_iterations", "seconds", "num_samples", "seed", "checkpoint",
                    "fid", "is", "nll_bpd"):
            assert key in row, key
    # the same seed gives the same numbers; a rerun skips what is already there
    again = tmp_path / "again"
    assert eval_main(argv[:-1] + [str(again)]) == 0
    rows_again = json.loads((again / "results.json").read_text())["rows"]
    assert [r["fid"] for r in rows_again] == [r["fid"] for r in rows]
    assert eval_main(argv) == 0
    assert len(json.loads((out / "results.json").read_text())["rows"]) == 6


def test_a_sweep_puts_the_adaptive_sampler_beside_the_fixed_ones(image_checkpoint, tmp_path):
    extractor = tmp_path / "extractor.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    out = tmp_path / "sweep"
    assert eval_main(["images", "--ckpt", str(image_checkpoint), "--num-samples", "8", "--steps", "5", "--metrics", "fid",
                      "--sampler", "ddim,adaptive", "--rtol", "0.02,0.3", "--feature-extractor", str(extractor),
                      "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["sampler"], r["setting"], r["sampler_steps"]) for r in rows] == [
        ("ddim", "fixed", 5), ("adaptive", "adaptive rtol=0.02 atol=0.0078", None),
        ("adaptive", "adaptive rtol=0.3 atol=0.0078", None)]
    tight, loose = rows[1], rows[2]
    assert loose["network_evaluations"] < tight["network_evaluations"]
    for row in (tight, loose):
        assert row["evaluations_min"] <= row["network_evaluations"] <= row["evaluations_max"]
        assert row["rejected_steps"] >= 0 and math.isfinite(row["fid"]) and row["rtol"] in (0.02, 0.3)
    assert Image.open(out / "quality_vs_steps.png").size[0] > 100


def test_without_torch_fidelitys_file_fid_and_kid_use_the_converted_inception_and_is_fails_plainly(
        image_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    out = tmp_path / "no-inception"
    code = eval_main(["images", "--ckpt", str(image_checkpoint), "--num-samples", "4", "--steps", "3", "--metrics",
                      "fid,kid,is,nll", "--nll-images", "2", "--nll-timesteps", "3", "--out", str(out), "--batch-size", "4"])
    assert code == 2  # IS was asked for and could not be computed
    err = capsys.readouterr().err
    assert "IS not computed" in err and "weights-inception-2015-12-05-6726825d.pth" in err and str(tmp_path / "torch-home") in err
    data = json.loads((out / "results.json").read_text())
    row = data["rows"][0]
    assert "IS not computed" in data["meta"]["not_computed"] and data["meta"]["fid_network"].startswith("inception-2015-12-05-pool3-")
    assert math.isfinite(row["fid"]) and math.isfinite(row["kid"]) and "is" not in row and math.isfinite(row["nll_bpd"])
    assert row["fid_label"] == "FID@4" and row["reference_images"] == 4


def test_molecule_sweep(molecule_checkpoint, tmp_path):
    out = tmp_path / "sweep"
    assert eval_main(["molecules", "--ckpt", str(molecule_checkpoint), "--num-samples", "16", "--steps", "5,20",
                      "--exit-share", "0.05", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["setting"], r["sampler_steps"]) for r in rows] == [("fixed", 5), ("fixed", 20), ("exit-tol=0.05", 5), ("exit-tol=0.05", 20)]
    assert rows[1]["network_evaluations"] == 20 and rows[3]["network_evaluations"] <= 20  # (exits: test_graph_diffusion)
    assert rows[3]["evaluations_min"] <= rows[3]["network_evaluations"] <= rows[3]["evaluations_max"] <= 20
    assert "saved_network_evaluations_pct" in rows[3] and rows[3]["sampler"] == "posterior-jump"
    assert all(0 <= r["validity"] <= 1 and "fcd" in r for r in rows)
    assert all(r["validity"] <= r["largest_fragment_validity"] <= 1 and 0 <= r["connected"] <= 1 for r in rows)
    assert all("nspdk_mmd" in r for r in rows)
    assert (out / "quality_vs_steps.png").exists()
    # each setting's molecules kept, one line a sample (empty when invalid), with a grid
    assert rows[2]["samples_file"] == "samples/posterior-jump-exit-tol=0.05-5.smi"
    for row in rows:
        lines = (out / row["samples_file"]).read_text().splitlines()
        assert len(lines) == 16 and sum(bool(line) for line in lines) == round(row["validity"] * 16)
        assert (out / row["samples_file"]).with_suffix(".png").stat().st_size > 0


def test_commands_reject_bad_input(image_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        eval_main(["images", "--ckpt", str(image_checkpoint), "--steps", "10,abc"])
    assert eval_main(["images", "--ckpt", str(image_checkpoint), "--steps", "500", "--metrics", "nll",
                      "--nll-images", "1", "--nll-timesteps", "2", "--out", str(tmp_path / "e")]) == 2
    assert "steps=500" in capsys.readouterr().err
