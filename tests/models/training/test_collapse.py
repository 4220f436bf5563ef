"""The collapse monitor on a tiny real graph generator: it changes no loss (bitwise), probes at initialisation,
every k steps and at the end on the same fixed batch, writes collapse.json and collapse.png, survives a resume, and
refuses a model it cannot read."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from datamodules import SyntheticGraphDataModule
from models import CollapseMonitor, GraphGeneration
from models.training.collapse import SUMMARY_FILE


class LossRecorder(L.Callback):
    def __init__(self):
        self.losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach().clone())


def tiny_graph_model(layers: int = 3) -> GraphGeneration:
    torch.manual_seed(0)
    return GraphGeneration(max_nodes=12, num_train_timesteps=20, qgfd={"alpha": 0.5, "iterations": 2, "transition": "adjacency"},
                           network={"node_dim": 8, "edge_dim": 4, "layers": layers, "heads": 2},
                           optimizer={"lr": 1e-3, "warmup_steps": 0})


def train(folder, steps: int, callbacks: list, model=None, ckpt_path=None) -> L.Trainer:
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=CSVLogger(str(folder), name="logs"),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, callbacks=callbacks, log_every_n_steps=50)
    torch.manual_seed(0)
    trainer.fit(model or tiny_graph_model(), SyntheticGraphDataModule(num_nodes=12, batch_size=8), ckpt_path=ckpt_path)
    return trainer


def test_the_monitor_changes_no_loss_and_probes_each_layer(tmp_path):
    plain, watched = LossRecorder(), LossRecorder()
    train(tmp_path / "plain", 6, [plain])
    monitor = CollapseMonitor(every_n_steps=3, graphs=4)
    trainer = train(tmp_path / "watched", 6, [watched, monitor])
    assert len(watched.losses) == 6 and all(torch.equal(a, b) for a, b in zip(plain.losses, watched.losses))
    folder = tmp_path / "watched" / "logs" / "version_0"
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    assert [p["step"] for p in summary["probes"]] == [0, 3, 6] and summary["layers"] == 3
    assert all(len(p[name]) == 4 for p in summary["probes"] for name in ("consensus_distance", "effective_rank"))
    assert summary["consensus_distance_init"] == summary["probes"][0]["consensus_distance"][-1]
    assert 0 < summary["consensus_distance_end"] <= 1 and summary["effective_rank_end"] >= 1
    assert (folder / "collapse.png").stat().st_size > 0
    assert monitor.batch[0].shape[0] == 4 and trainer.global_step == 6


def test_the_first_probe_is_the_model_as_initialised_and_the_batch_survives_a_resume(tmp_path):
    from models.measures.collapse import collapse_measures

    monitor = CollapseMonitor(every_n_steps=2, graphs=4)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[monitor],
                        default_root_dir=str(tmp_path))
    torch.manual_seed(0)
    trainer.fit(tiny_graph_model(), SyntheticGraphDataModule(num_nodes=12, batch_size=8))
    fresh, data = tiny_graph_model(), SyntheticGraphDataModule(num_nodes=12, batch_size=8)
    data.setup("fit")
    fresh.diffusion.set_statistics(*data.statistics())
    states, mask, adjacency = fresh.collapse_states(monitor.batch, 0)
    assert len(states) == 4 and mask.shape == (4, 12) and adjacency.dtype == torch.bool
    assert collapse_measures(states, adjacency, mask) == {k: v for k, v in monitor.probes[0].items() if k != "step"}
    trainer.save_checkpoint(tmp_path / "two.ckpt")
    resumed = CollapseMonitor(every_n_steps=2, graphs=4)
    train(tmp_path / "resumed", 4, [resumed], ckpt_path=str(tmp_path / "two.ckpt"))
    assert [p["step"] for p in resumed.probes] == [0, 2, 4]
    assert all(torch.equal(a, b) for a, b in zip(resumed.batch, monitor.batch))


def test_bad_settings_and_a_model_without_states_are_refused(tmp_path):
    from lightning.pytorch.demos.boring_classes import BoringModel

    with pytest.raises(ValueError, match="every_n_steps=0; need a positive integer"):
        CollapseMonitor(every_n_steps=0)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[CollapseMonitor()], default_root_dir=str(tmp_path))
    with pytest.raises(TypeError, match="BoringModel has no collapse_states"):
        trainer.fit(BoringModel())


def test_the_monitor_reads_the_unets_attention_layers(tmp_path, tiny_image_model):
    from datamodules import DigitsDataModule

    monitor = CollapseMonitor(every_n_steps=2, graphs=4)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=CSVLogger(str(tmp_path), name="logs"),
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, callbacks=[monitor])
    model = tiny_image_model()
    trainer.fit(model, DigitsDataModule(data_dir=str(tmp_path), image_size=8, batch_size=8, val_size=16))
    summary = json.loads((tmp_path / "logs" / "version_0" / SUMMARY_FILE).read_text())
    from models.training.diagnostics import attention_layers

    # one state entering the first attention layer, then one leaving each
    assert [p["step"] for p in summary["probes"]] == [0, 2] and summary["layers"] == len(attention_layers(model.unet))
    assert all(0 < v <= 1 for v in summary["probes"][0]["consensus_distance"])
