"""`lightning predict` draws what `qgfd-sample` draws for the same seed and writes it the same way."""

from pathlib import Path

import numpy as np
import pytest

from sampling.commands.lightning import main
from sampling.commands.sample import main as sample_main
from conftest import CONFIGS



@pytest.mark.slow
def test_lightning_predict_writes_the_images_qgfd_sample_draws(tmp_path, monkeypatch, image_checkpoint):
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "-c", str(CONFIGS / "digits.yaml"), "--ckpt_path", str(image_checkpoint),
                 "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false",
                 "--trainer.callbacks+=models.SampleWriter", "--trainer.callbacks.num", "10",
                 "--trainer.callbacks.batch_size", "4", "--trainer.callbacks.steps", "3",
                 "--trainer.callbacks.sampler", "ddpm"]) == 0
    assert sample_main(["images", "--ckpt", str(image_checkpoint), "--num", "10", "--batch-size", "4", "--steps", "3",
                        "--sampler", "ddpm", "--out", str(tmp_path / "grid.png"), "--npz", str(tmp_path / "s.npz")]) == 0
    predicted, sampled = np.load(tmp_path / "run" / "predictions" / "samples.npz"), np.load(tmp_path / "s.npz")
    assert predicted[predicted.files[0]].shape[0] == 10
    assert np.array_equal(predicted[predicted.files[0]], sampled[sampled.files[0]])
    assert (tmp_path / "run" / "predictions" / "grid.png").stat().st_size > 0


@pytest.mark.slow
def test_lightning_predict_without_a_writer_adds_one_for_molecules(tmp_path, monkeypatch, molecule_checkpoint):
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "-c", str(CONFIGS / "qm9-cpu.yaml"), "--ckpt_path", str(molecule_checkpoint),
                 "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false",
                 "--trainer.callbacks", "[]"]) == 0
    smiles = (tmp_path / "run" / "predictions" / "molecules.smi").read_text().splitlines()
    assert len(smiles) == 64  # the writer's default number
    assert sample_main(["molecules", "--ckpt", str(molecule_checkpoint), "--num", "64", "--batch-size", "64",
                        "--out", str(tmp_path / "m.png"), "--smiles", str(tmp_path / "m.smi")]) == 0
    assert smiles == (tmp_path / "m.smi").read_text().splitlines()
