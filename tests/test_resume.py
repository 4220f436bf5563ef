"""The training stream: a fit interrupted mid-epoch and resumed from its last checkpoint ends with the weights of an
uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from conftest import StopAtStep, make_molecule_model, read_qm9_smiles
from datamodules import SmilesDataModule
from datamodules.loaders import EpochOrderLoader

pytestmark = pytest.mark.slow


class Batches(L.Callback):
    def __init__(self):
        self.seen: list[tuple[int, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((trainer.global_step, hash(batch[0].numpy().tobytes())))


def fit(folder: Path, steps: int, crash_at: int | None = None, resume: bool = False,
        **network) -> tuple[L.LightningModule, list]:
    L.seed_everything(0)
    model = make_molecule_model(**network)
    model.hparams.val_samples, model.hparams.val_sample_steps = 4, 5  # sampling inside the fit, as configs do
    smiles = folder / "train.smi"
    smiles.write_text("\n".join(read_qm9_smiles(200)) + "\n")
    data = SmilesDataModule(path=str(smiles), vocab="qm9", data_dir=str(folder / "data"), batch_size=32)
    batches = Batches()
    callbacks = [batches, ModelCheckpoint(dirpath=folder / "checkpoints", save_last=True, every_n_train_steps=1)]
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, val_check_interval=2, check_val_every_n_epoch=None,
                        limit_val_batches=1, num_sanity_val_steps=0, default_root_dir=str(folder),
                        callbacks=callbacks + ([StopAtStep(crash_at)] if crash_at else []))
    last = folder / "checkpoints" / "last.ckpt"
    if crash_at:
        with pytest.raises(RuntimeError, match="stopped at step"):
            trainer.fit(model, data)
    else:
        trainer.fit(model, data, ckpt_path=str(last) if resume else None)
    assert isinstance(trainer.train_dataloader, EpochOrderLoader)
    return model, batches.seen


def test_an_interrupted_fit_resumes_to_the_uninterrupted_weights(tmp_path):
    (tmp_path / "straight").mkdir()
    (tmp_path / "interrupted").mkdir()
    straight, straight_batches = fit(tmp_path / "straight", steps=8)  # 5 batches an epoch: crosses an epoch
    fit(tmp_path / "interrupted", steps=8, crash_at=3)  # mid-epoch, before step 3's checkpoint (Lightning runs
    resumed, resumed_batches = fit(tmp_path / "interrupted", steps=8, resume=True)  # checkpoint callbacks last)
    assert resumed_batches == straight_batches[2:]  # from step 2: the rest of epoch 0, then epoch 1's own order
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name  # weights and EMA: the same timesteps, noise and batches

