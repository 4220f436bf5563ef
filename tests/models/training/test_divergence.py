"""A diverged run stops plainly: after a few consecutive non-finite steps training ends with one message naming
the step, the last finite loss and the learning rate; non-finite weights are never saved over a checkpoint; the
sample-grid and quality callbacks log non-finite samples and carry on."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules import DigitsDataModule
from models import SampleGridCallback, SampleQualityCallback, TrainingDiagnostics
from qgfd_gen.errors import TrainingDiverged
from extractor_cases import TinyExtractor


def trainer_for(tmp_path, callbacks, max_steps: int = 40) -> L.Trainer:
    return L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                     callbacks=callbacks, default_root_dir=str(tmp_path))


def digits(tmp_path) -> DigitsDataModule:
    return DigitsDataModule(data_dir=str(tmp_path / "data"), image_size=8, batch_size=16, val_size=32)


def test_an_absurd_learning_rate_stops_training_with_one_message_and_keeps_a_finite_checkpoint(tiny_image_model, tmp_path):
    saved = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_last=True, save_top_k=0)
    diagnostics = TrainingDiagnostics(stop_after_nonfinite=5)
    trainer = trainer_for(tmp_path, [diagnostics, saved])
    with pytest.raises(TrainingDiverged) as stopped:
        trainer.fit(tiny_image_model(timesteps=50, lr=1e6), digits(tmp_path))
    message = str(stopped.value)
    assert f"5 consecutive steps with a non-finite loss or gradient, up to step {trainer.global_step}" in message
    assert "the last finite loss was" in message and "learning rate 1e+06" in message
    assert trainer.global_step < 40 and diagnostics.consecutive_nonfinite == 5
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_non_finite_weights_are_never_saved_over_a_checkpoint(tiny_image_model, tmp_path):
    model = tiny_image_model(timesteps=50)
    trainer = trainer_for(tmp_path, [], max_steps=2)
    trainer.fit(model, digits(tmp_path))
    trainer.save_checkpoint(tmp_path / "good.ckpt")
    before = (tmp_path / "good.ckpt").read_bytes()
    with torch.no_grad():
        model.unet.conv_in.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"1 parameter tensors are non-finite \(first 'conv_in.weight'\)"):
        trainer.save_checkpoint(tmp_path / "good.ckpt")
    assert (tmp_path / "good.ckpt").read_bytes() == before


def test_grid_and_quality_callbacks_log_non_finite_samples_and_carry_on(tiny_image_model, tmp_path, caplog):
    model = tiny_image_model(timesteps=50)
    extractor = tmp_path / "extractor.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    quality = SampleQualityCallback(every_n_epochs=1, num_samples=4, steps=2, feature_extractor=str(extractor))
    grid = SampleGridCallback(num=4, steps=2)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False, limit_val_batches=1,
                        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                        callbacks=[quality, grid], default_root_dir=str(tmp_path))
    trainer.fit(model, digits(tmp_path))
    with torch.no_grad():
        model.ema.module.conv_out.bias.fill_(float("nan"))
    with caplog.at_level(logging.WARNING):
        grid.write_grid(trainer, model, "diverged")
        trainer.validate(model, digits(tmp_path), verbose=False)  # the quality callback measures at its end
    assert "no grid diverged" in caplog.text and "no FID" in caplog.text and "4 of 4 samples came out non-finite" in caplog.text
    assert not (tmp_path / "samples" / "diverged.png").exists() and quality.last["val/fid"] != quality.last["val/fid"]


@pytest.mark.slow
def test_the_lightning_command_ends_a_diverged_run_with_one_line_and_exit_status_2(tmp_path, monkeypatch, capsys):
    """The issue's own case: digits at learning rate 1e6, once a traceback from the sample grid."""
    from conftest import CONFIGS
    from sampling.commands.lightning import main

    monkeypatch.chdir(tmp_path)
    code = main(["fit", "-c", str(CONFIGS / "digits.yaml"), "--model.init_args.optimizer.lr", "1e6",
                 "--trainer.max_steps", "60", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false", "--data.init_args.data_dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and "error: training diverged: 20 consecutive steps" in err and "Traceback" not in err
    assert "learning rate" in err and "the last finite loss was" in err
    for path in tmp_path.rglob("*.ckpt"):  # whatever was saved holds finite weights only
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
