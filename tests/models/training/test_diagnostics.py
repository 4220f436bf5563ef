"""TrainingDiagnostics on tiny real models: gradient norms, alphas, a skipped non-finite step, QGFD residuals."""

from __future__ import annotations

import csv
import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from datamodules import DigitsDataModule
from models import TrainingDiagnostics
from models.training.diagnostics import RESIDUALS_FILE, attention_layers
from qgfd_gen.attention import QGFDConfig, trace_qgfd
from qgfd_gen.operator import qgfd_attention
from qgfd_gen.transitions import GridTransition

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["qgfd_gen.memory"]


def test_the_operator_traces_every_iteration_only_when_asked():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 16, 8) for _ in range(3))
    out, stats = qgfd_attention(q, k, v, GridTransition(4, 4), alpha=0.6, iterations=5, return_stats=True, trace=True)
    plain, plain_stats = qgfd_attention(q, k, v, GridTransition(4, 4), alpha=0.6, iterations=5, return_stats=True)
    assert torch.equal(out, plain) and plain_stats.trace is None
    assert stats.trace.shape == (5,)
    assert float(stats.trace[-1]) == pytest.approx(float(stats.residual.max()))
    assert bool((stats.trace[1:] < stats.trace[:-1]).all())  # a contraction by alpha: residuals shrink
    _, zero = qgfd_attention(q, k, v, GridTransition(4, 4), alpha=0.0, iterations=5, return_stats=True, trace=True)
    assert zero.trace.numel() == 0


def test_trace_qgfd_collects_each_call_and_switches_off(tiny_image_model):
    model = tiny_image_model(qgfd=QGFDConfig(alpha=0.5, iterations=3))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 7])
    with trace_qgfd(model.network) as traces:
        model.network(x, t)
        model.network(x, t)
    assert traces and all(len(calls) == 2 and calls[0].shape == (3,) for calls in traces.values())
    model.network(x, t)
    assert all(len(calls) == 2 for calls in traces.values())  # nothing recorded outside the block


def fit(model, tmp_path, steps: int, callback: TrainingDiagnostics) -> L.Trainer:
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=CSVLogger(tmp_path, name="logs"),
                        callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1, limit_val_batches=1, val_check_interval=steps,
                        num_sanity_val_steps=0)
    trainer.fit(model, DigitsDataModule(image_size=8, batch_size=8))
    return trainer


def test_norms_alphas_and_residuals_are_logged(tiny_image_model, tmp_path):
    model = tiny_image_model(qgfd=QGFDConfig(alpha=0.5, iterations=3, alpha_mode="learnable"))
    callback = TrainingDiagnostics()
    trainer = fit(model, tmp_path, 4, callback)
    with open(tmp_path / "logs" / "version_0" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    layers = attention_layers(model.network)
    assert len(layers) == 4 and "grad_norm/total" in columns
    assert all(f"grad_norm/{name}" in columns for name in layers)
    alphas = [c for c in columns if c.startswith("qgfd_alpha/")]
    assert len(alphas) == 4
    values = [float(r[alphas[0]]) for r in rows if r.get(alphas[0])]
    assert len(values) == 4 and values[0] == pytest.approx(0.5, abs=0.01) and len(set(values)) > 1  # it learns
    records = json.loads((tmp_path / "logs" / "version_0" / RESIDUALS_FILE).read_text())
    assert records[-1]["step"] == 4 and all(len(trace) == 3 for trace in records[-1]["layers"].values())
    assert any(c.startswith("qgfd_residual/") for c in columns)
    assert callback.seconds_per_step() > 0 and callback.step_memory_mb > 0 and trainer.global_step == 4


def test_a_resumed_fit_keeps_the_step_memory_its_first_attempt_measured(tiny_image_model, tmp_path):
    # graph batches are trimmed to their largest graph: a resumed fit that measured a later batch would give the same
    # run another figure (moses-scorecard's resumed runs did), so it keeps the first attempt's and times every batch
    def trainer(steps: int, callback: TrainingDiagnostics) -> L.Trainer:
        return L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                         callbacks=[callback, ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=1)])

    data = DigitsDataModule(image_size=8, batch_size=8)
    first = TrainingDiagnostics()
    trainer(4, first).fit(tiny_image_model(), data)
    assert first.step_memory_mb > 0 and len(first.step_seconds) == 3  # the measured batch is left out of the timing
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=False)
    (key,) = [k for k in checkpoint["callbacks"] if "TrainingDiagnostics" in k]
    assert checkpoint["callbacks"][key]["step_memory_mb"] == first.step_memory_mb
    checkpoint["callbacks"][key]["step_memory_mb"] = 12.5  # no batch of this model gives it: which one is reported?
    torch.save(checkpoint, tmp_path / "last.ckpt")
    resumed = TrainingDiagnostics()
    trainer(8, resumed).fit(tiny_image_model(), data, ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.step_memory_mb == 12.5 and len(resumed.step_seconds) == 4
    fresh = trainer(4, resumed)  # the same callback in a new fit, not resumed, measures its own batch again
    fresh.fit(tiny_image_model(), data)
    assert resumed.step_memory_mb not in (None, 12.5) and len(resumed.step_seconds) == 3


def test_a_non_finite_loss_skips_its_step_and_is_counted(tiny_image_model, tmp_path):
    model = tiny_image_model()
    real_step = model.training_step
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def poisoned(batch, batch_idx):
        seen[batch_idx] = {k: v.detach().clone() for k, v in model.network.state_dict().items()}
        loss = real_step(batch, batch_idx)
        return loss * float("nan") if batch_idx == 1 else loss

    model.training_step = poisoned
    callback = TrainingDiagnostics()
    fit(model, tmp_path, 3, callback)
    assert (callback.nonfinite_losses, callback.skipped_steps) == (1, 1)
    after_nan_step = seen[2]
    assert all(torch.equal(seen[1][k], after_nan_step[k]) for k in seen[1])  # the NaN step changed nothing
    assert all(torch.isfinite(p).all() for p in model.network.parameters())
    assert callback.state_dict()["skipped_steps"] == 1
