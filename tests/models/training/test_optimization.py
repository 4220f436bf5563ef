"""The EMA: once per optimiser step (not per batch), with a warm-up, and resumed exactly from a checkpoint."""

import lightning as L
import pytest
import torch

from datamodules import DigitsDataModule
from models.training.optimization import OptimizerConfig, ema_decay


def trainer(tmp_path, steps: int, accumulate: int = 1) -> L.Trainer:
    return L.Trainer(max_steps=steps, accumulate_grad_batches=accumulate, accelerator="cpu", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     limit_val_batches=0, default_root_dir=str(tmp_path))


def digits(tmp_path) -> DigitsDataModule:
    return DigitsDataModule(data_dir=str(tmp_path / "data"), image_size=8, batch_size=16, val_size=32)


def test_the_warm_up_rises_to_the_decay():
    assert ema_decay(0, 0.9999, None) == 0.9999
    assert ema_decay(1, 0.9999, 0.75) == pytest.approx(1 - 2**-0.75)
    assert ema_decay(10_000, 0.9999, 0.75) == pytest.approx(0.999, abs=2e-6)  # meaningful after 10k updates
    assert ema_decay(10**7, 0.9999, 0.75) == 0.9999  # capped
    with pytest.raises(ValueError, match="ema_warmup_power=1.5"):
        OptimizerConfig(ema_warmup_power=1.5)


def test_with_gradient_accumulation_the_ema_updates_once_per_optimiser_step(tiny_image_model, tmp_path):
    model = tiny_image_model(timesteps=50, ema_decay=0.9)
    fit = trainer(tmp_path, steps=3, accumulate=4)
    fit.fit(model, digits(tmp_path))
    assert fit.global_step == 3
    assert int(model.ema.n_averaged) == 3  # 12 batches, 3 optimiser steps


def test_resuming_restores_the_ema_exactly_and_its_warm_up_continues(tiny_image_model, tmp_path):
    model = tiny_image_model(timesteps=50, ema_decay=0.99, ema_warmup_power=0.75)
    first = trainer(tmp_path / "a", steps=3)
    first.fit(model, digits(tmp_path))
    first.save_checkpoint(tmp_path / "three.ckpt")
    saved = [p.clone() for p in model.ema.parameters()]
    resumed = tiny_image_model(timesteps=50, ema_decay=0.99, ema_warmup_power=0.75)
    again = trainer(tmp_path / "b", steps=3)  # resume at step 3 of 3: restores, trains nothing
    again.fit(resumed, digits(tmp_path), ckpt_path=str(tmp_path / "three.ckpt"))
    assert int(resumed.ema.n_averaged) == 3
    assert all(torch.equal(a, b) for a, b in zip(saved, resumed.ema.parameters()))
    more = trainer(tmp_path / "c", steps=5)
    more.fit(resumed, digits(tmp_path), ckpt_path=str(tmp_path / "three.ckpt"))
    assert int(resumed.ema.n_averaged) == 5  # the warm-up goes on from update 3, not from 0
