"""The training stream: a fit interrupted mid-epoch and resumed from its last checkpoint ends with the weights of an
uninterrupted one, and arms of one seed draw the same batches, timesteps and noise."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from conftest import StopAtStep, make_image_model, make_molecule_model, read_qm9_smiles
from datamodules import DigitsDataModule, SmilesDataModule
from datamodules.loaders import EpochOrderLoader

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["models.training.base"]

pytestmark = pytest.mark.slow


class Batches(L.Callback):
    def __init__(self):
        self.seen: list[tuple[int, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((trainer.global_step, hash(batch[0].numpy().tobytes())))


class Draws(L.Callback):
    """The global generator's state as each training step begins (after the module's own batch-start hook)."""

    def __init__(self):
        self.states: list[torch.Tensor] = []

    def on_before_zero_grad(self, trainer, pl_module, optimizer):  # after the step's draws, before the next
        self.states.append(torch.random.get_rng_state())


def molecules(folder: Path, **network) -> tuple[L.LightningModule, L.LightningDataModule]:
    model = make_molecule_model(**network)
    model.hparams.val_samples, model.hparams.val_sample_steps = 4, 5  # sampling inside the fit, as configs do
    smiles = folder / "train.smi"
    smiles.write_text("\n".join(read_qm9_smiles(200)) + "\n")
    return model, SmilesDataModule(path=str(smiles), vocab="qm9", data_dir=str(folder / "data"), batch_size=32)


def flipped_digits(folder: Path) -> tuple[L.LightningModule, L.LightningDataModule]:
    model = make_image_model(timesteps=20)
    return model, DigitsDataModule(data_dir=str(folder / "data"), image_size=8, batch_size=64, val_size=32, flip=True)


def fit(folder: Path, steps: int, crash_at: int | None = None, resume: bool = False, build=molecules,
        callbacks: tuple = ()) -> tuple[L.LightningModule, list]:
    folder.mkdir(exist_ok=True)
    L.seed_everything(0)
    model, data = build(folder)
    batches = Batches()
    callbacks = [batches, *callbacks, ModelCheckpoint(dirpath=folder / "checkpoints", save_last=True, every_n_train_steps=1)]
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


@pytest.mark.parametrize("build", [molecules, flipped_digits], ids=["molecules", "images-with-flips"])
def test_an_interrupted_fit_resumes_to_the_uninterrupted_weights(tmp_path, build):
    straight, straight_batches = fit(tmp_path / "straight", steps=8, build=build)  # crosses an epoch's end
    fit(tmp_path / "interrupted", steps=8, crash_at=3, build=build)  # mid-epoch, before step 3's checkpoint
    resumed, resumed_batches = fit(tmp_path / "interrupted", steps=8, resume=True, build=build)  # (Lightning runs
    assert resumed_batches == straight_batches[2:]  # checkpoint callbacks last) from step 2: the rest of the epoch
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name  # weights and EMA: the same batches, flips, timesteps and noise


def test_arms_of_one_seed_draw_the_same_batches_timesteps_and_noise(tmp_path):
    """Random-walk features add parameters, so the two networks' initialisations draw different amounts from the
    seeded generator; training starts from the seed again, so the pairs of runs still see the same draws."""
    runs = []
    for arm, network in {"vanilla": {}, "rrwp": {"rrwp_steps": 4}}.items():
        draws = Draws()
        model, batches = fit(tmp_path / arm, steps=4, build=lambda folder: molecules(folder, **network),
                             callbacks=(draws,))
        runs.append((model, batches, draws.states))
    (vanilla, vanilla_batches, vanilla_draws), (rrwp, rrwp_batches, rrwp_draws) = runs
    assert sum(p.numel() for p in rrwp.parameters()) > sum(p.numel() for p in vanilla.parameters())
    assert rrwp_batches == vanilla_batches
    assert len(vanilla_draws) == 4 and all(torch.equal(a, b) for a, b in zip(vanilla_draws, rrwp_draws))
