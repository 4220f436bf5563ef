"""Shared fixtures: tiny image and molecule models, real QM9 SMILES, and checkpoints trained through Lightning.

Everything here is real and small: models of a few thousand parameters, data that ships with the project's
dependencies (scikit-learn's digits, qm9pack's QM9), trained for a handful of steps on the CPU.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Callable

import lightning as L
import pytest
import torch
from diffusers import UNet2DModel

from datamodules import DigitsDataModule, SmilesDataModule
from datamodules.chemistry import QM9_VOCAB, encode_smiles
from datamodules.molecules import qm9pack_data_folder
from models import GraphTransformerConfig, ImageDiffusion, MoleculeDiffusion, NoiseSchedule, OptimizerConfig, UNetConfig
from qgfd_gen.attention import QGFDConfig

os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # Lightning's use of jsonargparse, not ours
TESTS_DIR = Path(__file__).resolve().parent  # tests/: shared helpers and data (tests/data)
ROOT_DIR = TESTS_DIR.parent  # the repository
CONFIGS = ROOT_DIR / "configs"

TINY_UNET = dict(sample_size=8, in_channels=1, block_out_channels=[16, 32],
                 down_block_types=["AttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "AttnUpBlock2D"],
                 layers_per_block=1, attention_head_dim=8, norm_num_groups=8, dropout=0.0)


@pytest.fixture(scope="session", autouse=True)
def project_cache(tmp_path_factory) -> Path:
    """The project's derived files (converted Inception, reference statistics) in a folder of this session, so
    that tests neither read nor fill the user's ~/.cache/qgfd-gen."""
    folder = tmp_path_factory.mktemp("qgfd-cache")
    previous = os.environ.get("QGFD_CACHE")
    os.environ["QGFD_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("QGFD_CACHE", None)
    else:
        os.environ["QGFD_CACHE"] = previous


def read_qm9_smiles(count: int, offset: int = 0) -> list[str]:
    with open(qm9pack_data_folder() / "qm9_part1.csv", newline="") as handle:
        rows = [row["SMILES"] for _, row in zip(range(offset + count), csv.DictReader(handle))]
    return rows[offset:]


@pytest.fixture
def qm9_smiles() -> Callable[..., list[str]]:
    """qm9_smiles(count, offset=0): real QM9 SMILES from the qm9pack package, in QM9 order."""
    return read_qm9_smiles


@pytest.fixture
def tiny_diffusers_unet() -> Callable[[], "UNet2DModel"]:
    """A stock diffusers UNet2DModel (8x8 RGB, attention at 8x8 and in the middle), seeded."""

    def build() -> UNet2DModel:
        torch.manual_seed(0)
        return UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1,
                           down_block_types=("AttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "AttnUpBlock2D"),
                           norm_num_groups=8, attention_head_dim=8)

    return build


def make_image_model(timesteps: int = 100, qgfd: QGFDConfig | None = None, ema_decay: float = 0.9, lr: float = 2e-4,
                     prediction_type: str = "epsilon", ema_warmup_power: float | None = None, **unet) -> ImageDiffusion:
    torch.manual_seed(0)
    return ImageDiffusion(unet=UNetConfig(**{**TINY_UNET, **unet}), qgfd=qgfd,
                          schedule=NoiseSchedule(num_train_timesteps=timesteps, prediction_type=prediction_type),
                          optimizer=OptimizerConfig(lr=lr, warmup_steps=1, ema_decay=ema_decay,
                                                    ema_warmup_power=ema_warmup_power))


@pytest.fixture
def tiny_image_model() -> Callable[..., ImageDiffusion]:
    """tiny_image_model(timesteps=100, qgfd=None, ema_decay=0.9, lr=2e-4, **unet overrides): an 8x8 one-channel
    U-Net with attention (QGFD by default) at 8x8 and in the middle, seeded."""
    return make_image_model


def make_molecule_model(timesteps: int = 20, qgfd: QGFDConfig | None = None, statistics_from: int = 300,
                        **network) -> MoleculeDiffusion:
    """A 2-layer graph transformer (GraphTransformerConfig overrides in `network`) on the QM9 vocabulary with the
    chain's statistics from real QM9 molecules."""
    torch.manual_seed(0)
    qgfd = qgfd or QGFDConfig(alpha=0.5, iterations=2, transition="adjacency")
    network = GraphTransformerConfig(**{**dict(node_dim=32, edge_dim=8, layers=2, heads=2), **network})
    model = MoleculeDiffusion(dataset="qm9", num_train_timesteps=timesteps, network=network, qgfd=qgfd,
                              optimizer=OptimizerConfig(lr=3e-3, warmup_steps=1, ema_decay=0.5))
    encoded = encode_smiles(read_qm9_smiles(statistics_from), QM9_VOCAB)
    atoms, bonds = encoded.atoms, encoded.bonds
    real = atoms >= 0
    model.diffusion.set_statistics(torch.bincount(atoms[real], minlength=4).double(),
                                   torch.bincount(bonds[real[:, :, None] & real[:, None, :]], minlength=4).double(),
                                   torch.bincount(real.sum(1), minlength=10).double())
    model.example_graphs = (atoms, bonds)
    return model


@pytest.fixture
def tiny_molecule_model() -> Callable[..., MoleculeDiffusion]:
    """tiny_molecule_model(timesteps=20, qgfd=None): see make_molecule_model; `.example_graphs` holds the
    encoded QM9 molecules its statistics came from."""
    return make_molecule_model


class StopAtStep(L.Callback):
    """Fails a run at a given step, as a crash or a killed job would (its checkpoints stay)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise RuntimeError(f"stopped at step {trainer.global_step}")


def fit_and_save(model: L.LightningModule, data: L.LightningDataModule, path: Path, steps: int) -> Path:
    """A few real training steps through Lightning, then a checkpoint (which records kind and data module)."""
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=str(path.parent))
    trainer.fit(model, data)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def image_checkpoint(tmp_path_factory) -> Path:
    """A tiny digits model (QGFD alpha 0.6, 6 iterations) after 15 training steps."""
    folder = tmp_path_factory.mktemp("images")
    model = make_image_model(timesteps=50, qgfd=QGFDConfig(alpha=0.6, iterations=6), ema_decay=0.5, lr=2e-3)
    data = DigitsDataModule(data_dir=str(folder), image_size=8, batch_size=32, val_size=32)
    return fit_and_save(model, data, folder / "tiny.ckpt", steps=15)


@pytest.fixture(scope="session")
def molecule_checkpoint(tmp_path_factory) -> Path:
    """A tiny QM9 model (300 molecules from a SMILES file) after 10 training steps."""
    folder = tmp_path_factory.mktemp("molecules")
    smiles = folder / "train.smi"
    smiles.write_text("\n".join(read_qm9_smiles(300, offset=100)) + "\n")
    torch.manual_seed(0)
    model = MoleculeDiffusion(dataset="qm9", num_train_timesteps=20,
                              network=GraphTransformerConfig(node_dim=32, edge_dim=8, layers=2, heads=2),
                              qgfd=QGFDConfig(alpha=0.5, iterations=4, transition="adjacency"),
                              optimizer=OptimizerConfig(lr=2e-3, warmup_steps=1, ema_decay=0.5))
    data = SmilesDataModule(str(smiles), vocab="qm9", data_dir=str(folder / "cache"), batch_size=32)
    return fit_and_save(model, data, folder / "tiny-mol.ckpt", steps=10)
