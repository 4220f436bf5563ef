"""Molecule data: SMILES files and CSV columns, published split files, QM9 from qm9pack, ZINC250k offline."""

import csv
import json

import pytest

from datamodules import DataUnavailableError, QM9DataModule, SmilesDataModule, ZINC250kDataModule
from datamodules.chemistry import canonical_smiles
from molecule_cases import ZINC_LIKE

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["qgfd_gen.downloads", "datamodules.graphs"]


def test_smiles_file_with_bad_lines_is_skipped_and_counted(tmp_path, caplog):
    path = tmp_path / "mols.smi"
    path.write_text("CCO ethanol\nnonsense\nc1ccccc1\n\nC[N+](C)(C)C\nCC(=O)[O-]\nXx\n" + "CCN\n" * 20)
    data = SmilesDataModule(str(path), vocab="zinc", data_dir=str(tmp_path / "cache"), batch_size=4,
                            val_fraction=0.1, test_fraction=0.1)
    with caplog.at_level("WARNING"):
        data.setup()
    kept = sum(len(data.smiles(split)) for split in ("train", "val", "test"))
    assert kept == 24
    assert "skipped 2 unparsable and 0 outside the vocabulary" in caplog.text
    atoms, bonds = next(iter(data.train_dataloader()))
    assert atoms.shape[0] == 4 and bonds.shape[1:] == (atoms.shape[1], atoms.shape[1])
    # the cache makes a second module start without parsing anything
    again = SmilesDataModule(str(path), vocab="zinc", data_dir=str(tmp_path / "cache"))
    assert again.cache_path() == data.cache_path() and again.cache_path().exists()


def test_csv_column_and_split_file(tmp_path):
    path = tmp_path / "mols.csv"
    rows = ["smiles,logP"] + [f"{s},1.0" for s in ["CCO", "CCN", "CCC", "CCCl", "c1ccncc1", "OCCO"]]
    path.write_text("\n".join(rows) + "\n")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"valid_idxs": [0, 4]}))
    data = SmilesDataModule(str(path), column="smiles", data_dir=str(tmp_path / "cache"), split_file=str(split),
                            val_fraction=0.0)
    data.setup()
    assert data.smiles("test") == ["CCO", "c1ccncc1"]
    assert len(data.smiles("train")) == 4
    with pytest.raises(ValueError, match="no column 'smi'"):
        SmilesDataModule(str(path), column="smi", data_dir=str(tmp_path / "c2")).setup()


def test_zinc_offline_without_file_says_where_to_put_it(tmp_path):
    with pytest.raises(DataUnavailableError, match="250k_rndm_zinc_drugs_clean_3.csv") as error:
        ZINC250kDataModule(data_dir=str(tmp_path), download=False).setup()
    assert str(tmp_path) in str(error.value) and "b59078b2b04c6e9431280e3dc42048d5" in str(error.value)


def test_zinc_from_a_local_csv(tmp_path):
    path = tmp_path / "250k_rndm_zinc_drugs_clean_3.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["smiles", "logP", "qed", "SAS"])
        for smiles in ZINC_LIKE * 3:
            writer.writerow([smiles + "\n", 1.0, 0.5, 2.0])  # the real file's SMILES end in a newline
    data = ZINC250kDataModule(data_dir=str(tmp_path), download=False, val_fraction=0.1, test_fraction=0.1)
    data.setup()
    everything = set(data.smiles("train")) | set(data.smiles("val")) | set(data.smiles("test"))
    assert everything == {canonical_smiles(s) for s in ZINC_LIKE}


def test_qm9_split_file_uses_qm9_row_numbers(tmp_path):
    split = tmp_path / "valid_idx_qm9.json"
    split.write_text(json.dumps({"valid_idxs": ["0", "3"]}))  # QM9 #1 (CH4) and #4 (C#C)
    data = QM9DataModule(data_dir=str(tmp_path), split_file=str(split), max_molecules=500, val_fraction=0.01)
    data.setup()
    assert data.smiles("test") == ["C", "C#C"]
    assert 490 <= len(data.smiles("train")) <= 500  # 500 rows, less those outside the vocabulary
