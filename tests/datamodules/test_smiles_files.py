"""SMILES files as people keep them: headers, CSV and TSV columns, names after the SMILES, empty lines."""

import pytest

from datamodules.chemistry import MAX_SMILES_CHARS, QM9_VOCAB, canonical_smiles, encode_smiles
from datamodules.smiles_files import read_smiles_file
from qgfd_gen.errors import DataUnavailableError, UsageError


def test_plain_lines_with_names_and_a_header(tmp_path, caplog):
    path = tmp_path / "a.smi"
    path.write_text("SMILES\nCCO ethanol\nc1ccccc1\tbenzene\n")
    with caplog.at_level("WARNING"):
        assert read_smiles_file(path) == ["CCO", "c1ccccc1"]
    assert "taken as a header" in caplog.text


def test_csv_with_a_smiles_column_says_which_it_used(tmp_path, caplog):
    path = tmp_path / "a.csv"
    path.write_text('id,SMILES,logP\n1,CCO,0.1\n2,"CCN\n",0.2\n')  # a quoted cell with a newline, as ZINC250k has
    with caplog.at_level("WARNING"):
        assert read_smiles_file(path) == ["CCO", "CCN"]
    assert "read column 'SMILES'" in caplog.text
    (tmp_path / "b.csv").write_text("id,value\n1,2\n")
    with pytest.raises(UsageError, match=r"columns \['id', 'value'\] but none is a SMILES column"):
        read_smiles_file(tmp_path / "b.csv")
    with pytest.raises(UsageError, match="no column 'smi'"):
        read_smiles_file(path, column="smi")


def test_samples_keep_their_empty_lines_and_missing_files_are_named(tmp_path):
    path = tmp_path / "s.smi"
    path.write_text("CCO\n\nCCN\n")
    assert read_smiles_file(path, keep_empty=True) == ["CCO", "", "CCN"]
    with pytest.raises(DataUnavailableError, match="missing.smi' does not exist"):
        read_smiles_file(tmp_path / "missing.smi")
    (tmp_path / "bin.smi").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(UsageError, match="not a text file"):
        read_smiles_file(tmp_path / "bin.smi")


def test_an_enormous_smiles_never_reaches_rdkit():
    huge = "C" * 100_000
    assert canonical_smiles(huge) is None  # returns at once instead of minutes (or a crash) in RDKit
    assert canonical_smiles("C" * (MAX_SMILES_CHARS + 1)) is None and canonical_smiles("C" * 40) is not None
    assert encode_smiles([huge, "CCO"], QM9_VOCAB).skipped["outside vocabulary"] == 1
