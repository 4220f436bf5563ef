"""DDP on two CPU processes (gloo): catches rank bugs (files written twice, metrics not synced) here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS



@pytest.mark.slow
def test_ddp_two_cpu_processes_train_and_write_once(tmp_path):
    callbacks = json.dumps([
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"dirpath": str(tmp_path / "ckpts"), "save_last": True}},
        {"class_path": "models.SampleGridCallback", "init_args": {"every_n_epochs": 1, "num": 4, "steps": 2}},
    ])
    command = [sys.executable, "-m", "sampling.commands.lightning", "fit", "-c", str(CONFIGS / "digits.yaml"),
               "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
               "--trainer.max_steps", "3", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3",
               "--trainer.limit_val_batches", "1", "--trainer.check_val_every_n_epoch", "1",
               "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
               "--trainer.callbacks", callbacks, "--data.init_args.batch_size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(CONFIGS.parent)}
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "ckpts" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 3
    grids = sorted(p.name for p in tmp_path.rglob("samples/*.png"))
    assert grids == ["epoch_0000.png", "final.png"]  # rank zero alone writes them
    metrics = (next(tmp_path.rglob("metrics.csv"))).read_text()
    assert "val/loss" in metrics
