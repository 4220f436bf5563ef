"""MOSES (Polykovskiy et al. 2020, MIT licence): drug-like molecules from ZINC's Clean Leads set (C N O F S
Cl Br, no charges, up to about 27 heavy atoms) in the benchmark's official split: train.csv.gz (1,584,663
molecules), test.csv.gz (176,074) and test_scaffolds.csv.gz, one SMILES column each.

Molecules are encoded with the ZINC vocabulary (nine elements, charges as tokens, 38 atoms at most), so a
MOSES run exercises the ZINC-scale code path on real drug-like molecules. The files are read from `path`
(a folder), or from `data_dir/moses`, where they are downloaded on first use and checked against their MD5.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import torch

from qgfd_gen.downloads import download_or_explain, fetch_bytes
from qgfd_gen.errors import DataUnavailableError
from qgfd_gen.io import atomic_path

from .chemistry import ZINC_VOCAB
from .molecules import MoleculeDataModule
from .smiles_files import read_smiles_file

URL = "https://media.githubusercontent.com/media/molecularsets/moses/master/data/"
MD5 = {"train.csv.gz": "712ffb13b3c0e4c24ab3faab75f5eb9e", "test.csv.gz": "67c1f90c86ff795e47485b2d615dc1c8",
       "test_scaffolds.csv.gz": "463b155c93d85d6806c6d448dcd476b7"}


class MOSESDataModule(MoleculeDataModule):
    """MOSES (drug-like molecules from ZINC's Clean Leads) in its official split: `val_fraction` of the training
    file (seeded) is held out for validation, and the test file is the test split.

    Args:
        data_dir: where the CSV files are, or are downloaded to on first use (offline: one line naming them).
        path: a folder holding the MOSES files, instead of data_dir.
        download: fetch missing files (else fail naming them).
        batch_size: molecules per training batch.
        num_workers: data loader workers.
        val_fraction: the share of the training file held out for validation.
        seed: the seed of the split, the subset and the training order.
        max_molecules: a seeded subset of that many training molecules and the first that many test molecules
            (a CPU-sized run); None keeps them all.
    """

    vocab = ZINC_VOCAB
    name = "moses"

    def __init__(self, data_dir: str = "data", path: Optional[str] = None, download: bool = True, batch_size: int = 128,
                 num_workers: int = 0, val_fraction: float = 0.02, seed: int = 0, max_molecules: Optional[int] = None):
        super().__init__(data_dir, batch_size, num_workers, val_fraction, 0.0, seed, None, max_molecules)
        self.path, self.download = (Path(path) if path else None), download
        self._train_count: Optional[int] = None

    def file(self, name: str) -> Path:
        """One of the benchmark's files: from `path` when it holds it, else from data_dir/moses, where it is
        downloaded (MD5 checked) when missing."""
        if self.path is not None and (self.path / name).is_file():
            return self.path / name
        folder = self.data_dir / "moses"
        target = folder / name
        if target.is_file():
            return target
        where = f"{str(self.path)!r} nor " if self.path is not None else ""
        message = (f"MOSES file {name} is in neither {where}{str(folder)!r}. Download {URL}{name} (MD5 {MD5[name]}) "
                   f"into {str(folder)!r}, or point --data.init_args.path at a folder holding {', '.join(MD5)}.")
        content = download_or_explain((lambda: fetch_bytes(URL + name)) if self.download else None, message)
        digest = hashlib.md5(content).hexdigest()
        if digest != MD5[name]:
            raise DataUnavailableError(f"downloaded {name} has MD5 {digest}, expected {MD5[name]}; not saved")
        with atomic_path(target) as tmp:
            tmp.write_bytes(content)
        return target

    def source_smiles(self) -> list[str]:
        train = read_smiles_file(self.file("train.csv.gz"), column="SMILES")
        self._train_count = len(train)
        return train + read_smiles_file(self.file("test.csv.gz"), column="SMILES")

    def _split_rows(self, count: int) -> dict[str, list[int]]:
        if self._train_count is None:
            self.source_smiles()
        n_train = self._train_count
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(self.seed)).tolist()
        n_val = int(round(self.val_fraction * n_train))
        return {"train": order[n_val:], "val": order[:n_val], "test": list(range(n_train, count))}

    def source_key(self) -> str:
        return "moses:" + ",".join(f"{name}:{self.file(name).stat().st_size}" for name in ("train.csv.gz", "test.csv.gz"))

    def scaffold_test_smiles(self) -> list[str]:
        """The benchmark's second test set: molecules whose scaffolds are absent from the training set."""
        return read_smiles_file(self.file("test_scaffolds.csv.gz"), column="SMILES")
