"""The stability instruments on tiny real models: they change no loss (bitwise), write every step's gradient norm
and the attention statistics to metrics.csv, and summarise the run; QK-norm and sigmaReparam survive a checkpoint
and the diffusers export."""

from __future__ import annotations

import csv
import json
import math
from collections import deque

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from datamodules import DigitsDataModule
from models import ImageDiffusion, StabilityMonitor
from models.training.pipeline import export_pipeline, load_pipeline
from qgfd_gen.attention import QGFDConfig

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["qgfd_gen.attention_statistics"]


class LossRecorder(L.Callback):
    def __init__(self):
        self.losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach().clone())


def train(model: L.LightningModule, data: L.LightningDataModule, folder, steps: int, monitor: bool):
    recorder = LossRecorder()
    callbacks = [recorder] + ([StabilityMonitor(every_n_steps=2)] if monitor else [])
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=CSVLogger(str(folder), name="logs"),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, gradient_clip_val=1.0, callbacks=callbacks, log_every_n_steps=50)
    trainer.fit(model, data)
    return recorder.losses, trainer


@pytest.mark.parametrize("qgfd", [True, False], ids=["qgfd", "vanilla"])
def test_the_monitor_changes_no_loss_and_logs_every_step(tiny_image_model, tmp_path, qgfd):
    attention = {} if qgfd else {"attention": "vanilla"}
    runs = []
    for monitor in (False, True):
        model = tiny_image_model(qgfd=QGFDConfig(alpha=0.5, iterations=2), **attention)
        data = DigitsDataModule(data_dir=str(tmp_path), image_size=8, batch_size=16, val_size=32)
        runs.append(train(model, data, tmp_path / f"m{monitor}", steps=6, monitor=monitor))
    (plain, _), (watched, trainer) = runs
    assert all(torch.equal(a, b) for a, b in zip(plain, watched)) and len(watched) == 6  # bitwise
    rows = list(csv.DictReader(open(tmp_path / "mTrue" / "logs" / "version_0" / "metrics.csv")))
    steps = {int(r["step"]) for r in rows if r.get("stability/grad_norm")}
    assert steps == set(range(6))  # every step, though log_every_n_steps is 50
    probed = [r for r in rows if r.get("attn/min_entropy_pT")]
    assert len(probed) == 3  # steps 0, 2, 4
    layer_columns = [c for c in rows[0] if c.startswith("attn/") and c.endswith("/entropy_pT")]
    assert len(layer_columns) == 4  # the down block's, the middle block's and the up block's two (layers_per_block + 1)
    for row in probed:
        values = [float(row[c]) for c in row if c.startswith("attn/") and row[c]]
        assert values and all(math.isfinite(v) for v in values)
        if qgfd:  # QGFD's effective weights spread at least as far as the softmax's
            assert float(row["attn/min_entropy_pT"]) >= float(row["attn/min_entropy_p0"]) - 1e-6
        else:
            assert float(row["attn/min_entropy_pT"]) == float(row["attn/min_entropy_p0"])
    summary = json.loads((tmp_path / "mTrue" / "logs" / "version_0" / "stability.json").read_text())
    assert summary["monitored_steps"] == 6 and summary["initial_loss"] == pytest.approx(float(watched[0]))
    assert summary["max_grad_norm"] > 0 and summary["stopped_by"] is None


def test_the_monitor_reads_the_graph_transformers_attention(tiny_molecule_model, tmp_path):
    from datamodules import SmilesDataModule
    from conftest import read_qm9_smiles

    smiles = tmp_path / "train.smi"
    smiles.write_text("\n".join(read_qm9_smiles(64)) + "\n")
    data = SmilesDataModule(str(smiles), vocab="qm9", data_dir=str(tmp_path / "cache"), batch_size=16)
    losses, trainer = train(tiny_molecule_model(), data, tmp_path, steps=3, monitor=True)
    rows = list(csv.DictReader(open(tmp_path / "logs" / "version_0" / "metrics.csv")))
    probed = [r for r in rows if r.get("attn/min_entropy_pT")]
    assert probed and len([c for c in rows[0] if c.endswith("/max_logit") and c != "attn/max_logit"]) == 2
    assert all(math.isfinite(float(r["attn/max_logit"])) for r in probed)


def test_spikes_are_counted_against_the_running_median():
    monitor = StabilityMonitor(window=5, min_history=3, grad_spike_factor=5.0)
    history: deque = deque(maxlen=5)
    seen = [monitor._spike(history, value, 5.0) for value in (1.0, 1.2, 0.9, 6.0, 1.1, 4.0)]
    assert seen == [False, False, False, True, False, False]  # 6 > 5 x 1.0; 4 < 5 x 1.1


def test_bad_monitor_settings_are_refused():
    with pytest.raises(ValueError, match="window=0; need a positive integer"):
        StabilityMonitor(window=0)
    with pytest.raises(ValueError, match="grad_spike_factor=1; need a factor above 1"):
        StabilityMonitor(grad_spike_factor=1)


@pytest.mark.parametrize("switches", [{"qk_norm": True}, {"spectral": "qk"}, {"spectral": "all", "qk_norm": True}])
def test_qk_norm_and_spectral_survive_a_checkpoint_and_the_export(tiny_image_model, tmp_path, switches):
    model = tiny_image_model(qgfd=QGFDConfig(alpha=0.5, iterations=2), **switches)
    data = DigitsDataModule(data_dir=str(tmp_path), image_size=8, batch_size=16, val_size=32)
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, data)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = ImageDiffusion.load_from_checkpoint(tmp_path / "m.ckpt", weights_only=False)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, msg=name)
    assert any("norm_q" in n for n in loaded.state_dict()) == bool(switches.get("qk_norm"))
    assert any(n.endswith(".gamma") for n in loaded.state_dict()) == ("spectral" in switches)
    images = model.sample(2, sampler="ddim", steps=3, seed=0).images
    torch.testing.assert_close(loaded.sample(2, sampler="ddim", steps=3, seed=0).images, images)
    pipeline = load_pipeline(export_pipeline(model, tmp_path / "pipe"))
    exported = pipeline(batch_size=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                        output_type="np").images
    assert exported.shape == (2, 8, 8, 1) and bool(torch.isfinite(torch.from_numpy(exported)).all())
