"""MOSES: the official split from the shipped slice, a tiny model trained and sampled through Lightning, and
the ZINC250k loader on a file in ZINC250k's exact format built from MOSES molecules and charged ones."""

import csv
from pathlib import Path

import lightning as L
import pytest
import torch

from conftest import CONFIGS, TESTS_DIR
from datamodules import DataUnavailableError, MOSESDataModule, ZINC250kDataModule
from datamodules.chemistry import ZINC_VOCAB, canonical_smiles, decode_graphs, encode_smiles, mols_to_smiles
from datamodules.smiles_files import read_smiles_file
from molecule_cases import ZINC_LIKE
from models import GraphTransformerConfig, MoleculeDiffusion, OptimizerConfig
from qgfd_gen.attention import QGFDConfig
from models.training.cli import run_cli

SLICE = TESTS_DIR / "data" / "moses"
CHARGED = ZINC_LIKE + ["C[NH3+]", "CC(=O)[O-]"]  # [NH3+], [O-], a nitro group, [S-] ...


def test_official_split_from_a_folder(tmp_path):
    data = MOSESDataModule(data_dir=str(tmp_path), path=str(SLICE), download=False, val_fraction=0.1, batch_size=16)
    data.setup()
    assert len(data.smiles("val")) == 40 and len(data.smiles("train")) == 360 and len(data.smiles("test")) == 120
    assert data.smiles("test")[0] == canonical_smiles(read_smiles_file(SLICE / "test.csv.gz", column="SMILES")[0])
    assert len(data.scaffold_test_smiles()) == 60
    atoms, bonds = next(iter(data.train_dataloader()))
    assert atoms.shape[0] == 16 and atoms.shape[1] <= ZINC_VOCAB.max_atoms and int(atoms.max()) < len(ZINC_VOCAB)


def test_missing_files_say_where_they_go_offline(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"train.csv.gz .*media.githubusercontent.com.*712ffb13"):
        MOSESDataModule(data_dir=str(tmp_path), path=str(tmp_path / "nowhere"), download=False).setup()


@pytest.mark.slow
def test_a_tiny_model_trains_and_samples_on_moses(tmp_path):
    torch.manual_seed(0)
    model = MoleculeDiffusion(dataset="zinc", num_train_timesteps=20,
                              network=GraphTransformerConfig(node_dim=32, edge_dim=8, layers=2, heads=2),
                              qgfd=QGFDConfig(alpha=0.5, iterations=2, transition="adjacency"),
                              optimizer=OptimizerConfig(lr=2e-3, warmup_steps=1, ema_decay=0.5))
    data = MOSESDataModule(data_dir=str(tmp_path), path=str(SLICE), download=False, batch_size=32)
    trainer = L.Trainer(max_steps=5, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1)
    trainer.fit(model, data)
    assert bool(model.diffusion.statistics_set) and model.diffusion.size_distribution[25:].sum() > 0
    samples = model.sample(6, steps=5, seed=0, batch_size=4)
    assert samples.atoms.shape == (6, 38) and len(samples.smiles) == 6
    assert torch.equal(samples.atoms, model.sample(6, steps=5, seed=0, batch_size=6).atoms)


def test_the_cpu_config_builds_on_the_zinc_vocabulary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = run_cli(["-c", str(CONFIGS / "moses-cpu.yaml")], run=False)
    assert isinstance(cli.datamodule, MOSESDataModule) and cli.model.vocab is ZINC_VOCAB


def write_zinc250k_csv(path: Path, smiles: list[str]) -> Path:
    """ZINC250k's own format: header smiles,logP,qed,SAS; each SMILES quoted and ending in a newline."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(["smiles", "logP", "qed", "SAS"])
        for i, text in enumerate(smiles):
            writer.writerow([text + "\n", round(0.1 * i, 3), 0.5, 2.0])
    return path


def test_zinc250k_format_round_trips_moses_and_charged_molecules(tmp_path):
    smiles = read_smiles_file(SLICE / "train.csv.gz", column="SMILES")[:150] + CHARGED
    path = write_zinc250k_csv(tmp_path / "250k_rndm_zinc_drugs_clean_3.csv", smiles)
    assert '"' in path.read_text().split("\n")[1]  # the SMILES cells are quoted across their newline
    data = ZINC250kDataModule(data_dir=str(tmp_path), download=False, val_fraction=0.0, test_fraction=0.0)
    data.setup()
    assert len(data.smiles("train")) == len(smiles)  # nothing skipped
    encoded = encode_smiles(smiles, ZINC_VOCAB)
    decoded = mols_to_smiles(decode_graphs(encoded.atoms, encoded.bonds, ZINC_VOCAB))
    assert [canonical_smiles(s) for s in decoded] == [canonical_smiles(s) for s in smiles]  # no loss
    tokens = {ZINC_VOCAB.tokens[i] for i in encoded.atoms[encoded.atoms >= 0].tolist()}
    assert {"N+", "O-", "S-"} <= tokens
