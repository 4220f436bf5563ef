"""Sampling and evaluation: molecule metrics, the image metric path, NLL, sweeps and the two commands."""

import csv
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image
from torch import nn

from datamodules import DigitsDataModule, SmilesDataModule
from datamodules.molecules import qm9pack_data_folder
from models import ImageDiffusion, MoleculeDiffusion
from qgfd_gen.attention import QGFDConfig
from qgfd_gen.metrics import ImageQuality, MoleculeMetrics, frechet_chemnet_distance, score_molecules
from sampling.evaluate import main as eval_main
from sampling.nll import nll_bits_per_dim
from sampling.sample import main as sample_main


def qm9_smiles(count: int, offset: int = 100) -> list[str]:
    with open(qm9pack_data_folder() / "qm9_part1.csv", newline="") as handle:
        rows = [row["SMILES"] for _, row in zip(range(offset + count), csv.DictReader(handle))]
    return rows[offset:]


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


def test_molecule_metric_accumulates_over_updates():
    metric = MoleculeMetrics(["CCO"])
    metric.update(["CCO", "CCN"])
    metric.update(["CCN", "xx"])
    result = metric.compute()
    assert float(result["validity"]) == pytest.approx(0.75)
    assert float(result["uniqueness"]) == pytest.approx(2 / 3)
    assert float(result["novelty"]) == pytest.approx(0.5)


def test_fcd_of_a_set_against_itself_is_about_zero():
    smiles = qm9_smiles(60)
    assert abs(frechet_chemnet_distance(smiles, smiles)) < 1e-2
    assert frechet_chemnet_distance(smiles[:30], ["CCCCCCCCC", "c1ccccc1Cl", "CC(=O)O"] * 10) > 1.0


def test_scoring_a_smiles_file(tmp_path):
    samples, train, test = tmp_path / "s.smi", tmp_path / "train.smi", tmp_path / "test.smi"
    samples.write_text("CCO\n\nNone\nCCO\nc1ccccc1\nC(C)(C)(C)(C)C\n")
    train.write_text("CCO\nCCC\n")
    test.write_text("\n".join(qm9_smiles(20)) + "\n")
    out = tmp_path / "scores.json"
    assert eval_main(["molecules", "--samples", str(samples), "--train", str(train), "--test", str(test), "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["num_samples"] == 6 and scores["validity"] == pytest.approx(0.5)
    assert scores["uniqueness"] == pytest.approx(2 / 3) and scores["novelty"] == pytest.approx(0.5)
    assert math.isfinite(scores["fcd"]) and scores["fcd"] > 0


# ------------------------------------------------------------------------------------------ image metrics
class TinyExtractor(nn.Module):
    """A fixed random conv net: logits for IS, pooled features for FID."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.head = nn.Linear(8, 5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255
        return torch.relu(self.conv(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_fid_and_is_with_a_custom_feature_extractor():
    real = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    quality = ImageQuality(TinyExtractor())
    quality.update_real(real)
    quality.update_fake(real)
    same = quality.compute()
    assert abs(same["fid"]) < 1e-3 and same["is"] >= 1.0
    quality.reset_fake()
    quality.update_fake(torch.zeros(64, 3, 8, 8) + torch.rand(64, 3, 8, 8) * 0.1)
    assert quality.compute()["fid"] > 10 * max(abs(same["fid"]), 1e-4)
    cached = quality.real_state()  # real statistics survive the fake reset and can be cached
    assert int(cached["num"]) == 64


# ------------------------------------------------------------------------------------------ tiny trained models
def fit_and_save(model: L.LightningModule, data: L.LightningDataModule, path: Path, steps: int) -> Path:
    """A few real training steps through Lightning, then a checkpoint (which records the data module)."""
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=str(path.parent))
    trainer.fit(model, data)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    model = ImageDiffusion(
        sample_size=8, in_channels=1, block_out_channels=[16, 32], down_block_types=["AttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "AttnUpBlock2D"], layers_per_block=1, attention_head_dim=8, norm_num_groups=8,
        dropout=0.0, num_train_timesteps=50, warmup_steps=1, ema_decay=0.5, lr=2e-3,
        qgfd=QGFDConfig(alpha=0.6, steps=6),
    )
    data = DigitsDataModule(data_dir=str(folder), image_size=8, batch_size=32, val_size=32)
    return fit_and_save(model, data, folder / "tiny.ckpt", steps=15)


@pytest.fixture(scope="module")
def molecule_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("molecules")
    smiles = folder / "train.smi"
    smiles.write_text("\n".join(qm9_smiles(300)) + "\n")
    model = MoleculeDiffusion(dataset="qm9", diffusion_steps=20, node_dim=32, edge_dim=8, layers=2, heads=2,
                              qgfd=QGFDConfig(alpha=0.5, steps=4, transition="adjacency"), warmup_steps=1, lr=2e-3,
                              ema_decay=0.5)
    data = SmilesDataModule(str(smiles), vocab="qm9", data_dir=str(folder / "cache"), batch_size=32)
    return fit_and_save(model, data, folder / "tiny-mol.ckpt", steps=10)


def test_nll_bits_per_dim(image_checkpoint):
    from sampling.checkpoints import load_model

    model = load_model(image_checkpoint, "images")
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    full = nll_bits_per_dim(model, images, seed=0)
    assert full.shape == (4,) and torch.isfinite(full).all() and (full > 0).all()
    assert torch.equal(full, nll_bits_per_dim(model, images, seed=0))
    assert torch.allclose(nll_bits_per_dim(model, images, timesteps=49, seed=0), full)  # all T - 1 middle terms
    estimate = nll_bits_per_dim(model, images, timesteps=10, seed=0)
    assert torch.isfinite(estimate).all() and (estimate > 0).all() and not torch.allclose(estimate, full)
    clean = torch.linspace(-1, 1, 256)[torch.randint(0, 256, (2, 1, 8, 8), generator=torch.Generator().manual_seed(0))]
    assert (nll_bits_per_dim(model, clean, seed=0) > 0).all()


def test_image_sweep_writes_results_and_early_exit_saves_evaluations(image_checkpoint, tmp_path):
    extractor = tmp_path / "extractor.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    out = tmp_path / "sweep"
    argv = ["images", "--ckpt", str(image_checkpoint), "--num-samples", "16", "--steps", "5,10", "--metrics", "fid,is,nll",
            "--feature-extractor", str(extractor), "--exit-tol", "1.5", "--qgfd-eps", "1e-2", "--qgfd-steps", "20",
            "--nll-images", "4", "--nll-timesteps", "5", "--batch-size", "8", "--out", str(out)]
    assert eval_main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["setting"], r["steps"]) for r in rows] == [
        ("fixed", 5), ("fixed", 10), ("qgfd-eps=0.01", 5), ("qgfd-eps=0.01", 10), ("exit-tol=1.5", 5), ("exit-tol=1.5", 10)]
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 6
    assert Image.open(out / "quality_vs_steps.png").size[0] > 100
    fixed10 = next(r for r in rows if r["setting"] == "fixed" and r["steps"] == 10)
    exit10 = next(r for r in rows if r["setting"] == "exit-tol=1.5" and r["steps"] == 10)
    eps10 = next(r for r in rows if r["setting"] == "qgfd-eps=0.01" and r["steps"] == 10)
    assert exit10["network_evaluations"] < fixed10["network_evaluations"] == 10
    assert exit10["saved_network_evaluations"] > 0
    assert fixed10["qgfd_iterations"] == 6.0 and eps10["qgfd_iterations"] < 20
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


def test_missing_inception_weights_fail_plainly_and_other_metrics_still_run(image_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    out = tmp_path / "no-inception"
    code = eval_main(["images", "--ckpt", str(image_checkpoint), "--num-samples", "4", "--steps", "3", "--metrics",
                      "fid,is,nll", "--nll-images", "2", "--nll-timesteps", "3", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "weights-inception-2015-12-05-6726825d.pth" in err and str(tmp_path / "torch-home") in err
    data = json.loads((out / "results.json").read_text())
    assert "not computed" in data["meta"]["not_computed"]
    assert "fid" not in data["rows"][0] and math.isfinite(data["rows"][0]["nll_bpd"])


def test_sample_images_command(image_checkpoint, tmp_path):
    out, npz, folder = tmp_path / "grid.png", tmp_path / "s.npz", tmp_path / "each"
    assert sample_main(["images", "--ckpt", str(image_checkpoint), "--num", "6", "--steps", "4", "--seed", "1",
                        "--out", str(out), "--npz", str(npz), "--images-dir", str(folder)]) == 0
    assert Image.open(out).size[0] > 8
    import numpy as np

    assert np.load(npz)["arr_0"].shape == (6, 8, 8, 1)
    assert len(list(folder.glob("*.png"))) == 6
    assert not list(tmp_path.glob(".*.tmp*"))  # no temporary files left behind


def test_sample_molecules_command_and_sweep(molecule_checkpoint, tmp_path):
    grid, smi = tmp_path / "mols.png", tmp_path / "mols.smi"
    assert sample_main(["molecules", "--ckpt", str(molecule_checkpoint), "--num", "12", "--steps", "5",
                        "--out", str(grid), "--smiles", str(smi)]) == 0
    assert len(smi.read_text().split("\n")) == 13  # 12 lines, each ended by a newline
    assert Image.open(grid).size[0] > 100
    out = tmp_path / "sweep"
    assert eval_main(["molecules", "--ckpt", str(molecule_checkpoint), "--num-samples", "16", "--steps", "5,20",
                      "--exit-tol", "0.9", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["setting"], r["steps"]) for r in rows] == [("fixed", 5), ("fixed", 20), ("exit-tol=0.9", 5), ("exit-tol=0.9", 20)]
    assert rows[1]["network_evaluations"] == 20 and rows[3]["network_evaluations"] < 20
    assert all(0 <= r["validity"] <= 1 and "fcd" in r for r in rows)
    assert (out / "quality_vs_steps.png").exists()


def test_commands_reject_bad_input(image_checkpoint, molecule_checkpoint, tmp_path, capsys):
    assert sample_main(["images", "--ckpt", str(tmp_path / "missing.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sample_main(["molecules", "--ckpt", str(image_checkpoint), "--out", str(tmp_path / "x.png")]) == 2
    assert "use the `images` subcommand" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(SystemExit):
        eval_main(["images", "--ckpt", str(image_checkpoint), "--steps", "10,abc"])
    assert eval_main(["images", "--ckpt", str(image_checkpoint), "--steps", "500", "--metrics", "nll",
                      "--nll-images", "1", "--nll-timesteps", "2", "--out", str(tmp_path / "e")]) == 2
    assert "steps=500" in capsys.readouterr().err
