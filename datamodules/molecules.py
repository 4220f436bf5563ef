"""Molecule data: QM9 (from the `qm9pack` package, no download), ZINC250k (CSV, downloaded on first use
or read from a path), and any SMILES file. Molecules become padded graphs (datamodules.chemistry), cached
in `data_dir` so that a second run starts at once. SMILES that fail to parse or fall outside the
vocabulary are skipped and counted in one log line.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import logging
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import TensorDataset

from qgfd_gen.downloads import download_or_explain, fetch_bytes
from qgfd_gen.errors import UsageError, DataUnavailableError
from qgfd_gen.io import atomic_path

from .graphs import GraphDataModule, graph_counts
from .smiles_files import read_smiles_file
from .chemistry import NUM_BOND_TYPES, QM9_VOCAB, ZINC_VOCAB, AtomVocabulary, encode_smiles

log = logging.getLogger(__name__)
CACHE_VERSION = 1


class MoleculeDataModule(GraphDataModule):
    """Shared logic: subclasses return split SMILES lists from `load_splits()`."""

    vocab: AtomVocabulary = QM9_VOCAB
    name = "molecules"

    def __init__(self, data_dir: str = "data", batch_size: int = 256, num_workers: int = 0, val_fraction: float = 0.1,
                 test_fraction: float = 0.1, seed: int = 0, split_file: Optional[str] = None, max_molecules: Optional[int] = None):
        super().__init__()
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= value < 1:
                raise ValueError(f"{name}={value!r}; need a fraction in [0, 1)")
        for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r}; need an integer >= {low}")
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.split_file, self.max_molecules = split_file, max_molecules
        self.splits: Optional[dict] = None

    # ---------------------------------------------------------------- what subclasses provide
    def source_smiles(self) -> list[str]:
        """All SMILES of the data set, in its own row order."""
        raise NotImplementedError

    def source_key(self) -> str:
        """Identifies the source for the cache (a file's size and time, a package version...)."""
        raise NotImplementedError

    def held_out_rows(self, split: list) -> list[int]:
        """Rows named by a published split file (0-based row numbers of `source_smiles`)."""
        return [int(i) for i in split]

    # ---------------------------------------------------------------- splits and cache
    def _split_rows(self, count: int) -> dict[str, list[int]]:
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.seed)).tolist()
        if self.split_file:
            data = json.loads(Path(self.split_file).read_text())
            listed = data["valid_idxs"] if isinstance(data, dict) and "valid_idxs" in data else data
            if not isinstance(listed, list):
                raise ValueError(f"split file {self.split_file!r}: expected a list or {{\"valid_idxs\": [...]}}")
            test = sorted(set(self.held_out_rows(listed)))
            bad = [i for i in test if not 0 <= i < count]
            if bad:
                raise ValueError(f"split file {self.split_file!r} names rows outside 0..{count - 1}: {bad[:5]}")
            held = set(test)
            rest = [i for i in order if i not in held]
            n_val = int(round(self.val_fraction * len(rest)))
            return {"train": rest[n_val:], "val": rest[:n_val], "test": test}
        n_test, n_val = int(round(self.test_fraction * count)), int(round(self.val_fraction * count))
        return {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}

    def cache_path(self) -> Path:
        key = json.dumps([CACHE_VERSION, self.source_key(), self.vocab.tokens, self.vocab.max_atoms, self.seed,
                          self.val_fraction, self.test_fraction, self.split_file and Path(self.split_file).read_text(),
                          self.max_molecules])
        return self.data_dir / f"{self.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"

    def prepare_data(self) -> None:
        path = self.cache_path()
        if path.exists():
            return
        smiles = self.source_smiles()
        rows = self._split_rows(len(smiles))
        splits, skipped = {}, {}
        for split, indices in rows.items():
            if self.max_molecules:  # a quick subset: at most this many per split
                indices = indices[: self.max_molecules]
            encoded = encode_smiles([smiles[i] for i in indices], self.vocab)
            splits[split] = {"atoms": encoded.atoms, "bonds": encoded.bonds.to(torch.uint8), "smiles": encoded.smiles}
            for reason, count in encoded.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + count
        log.warning(
            "%s: %d molecules kept (train %d, val %d, test %d); skipped %d unparsable and %d outside the vocabulary",
            self.name, sum(len(s["smiles"]) for s in splits.values()), len(splits["train"]["smiles"]),
            len(splits["val"]["smiles"]), len(splits["test"]["smiles"]), skipped["unparsable"], skipped["outside vocabulary"],
        )
        with atomic_path(path) as tmp:
            torch.save({"splits": splits, "skipped": skipped}, tmp)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits is None:
            self.prepare_data()
            path = self.cache_path()
            try:  # tensors, lists and strings only: a cache is never unpickled as code
                self.splits = torch.load(path, weights_only=True)["splits"]
            except Exception as error:
                raise UsageError(f"{str(path)!r} is not a molecule cache this project wrote ({type(error).__name__}); "
                                 "delete it and it is made again from the data") from None

    def dataset(self, split: str) -> TensorDataset:
        data = self.splits[split]
        return TensorDataset(data["atoms"], data["bonds"].long())

    def smiles(self, split: str) -> list[str]:
        self.setup()
        return self.splits[split]["smiles"]

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training-set counts: atom types, bond types over atom pairs (0 = none), molecule sizes."""
        self.setup()
        train = self.splits["train"]
        return graph_counts(train["atoms"], train["bonds"], len(self.vocab), NUM_BOND_TYPES, self.vocab.max_atoms)


def qm9pack_data_folder() -> Path:
    """The `data` folder of the qm9pack package, found without importing it (its import needs pkg_resources)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError("QM9 comes from the `qm9pack` package, which is not installed: pip install qm9pack")
    return Path(spec.submodule_search_locations[0]) / "data"


class QM9DataModule(MoleculeDataModule):
    """QM9 heavy-atom graphs (C, N, O, F; at most 9 atoms) from qm9pack's CSV files. `split_file`: JSON
    with a plain list or {"valid_idxs": [...]} of 0-based QM9 row numbers (QM9 index - 1) held out as test."""

    vocab = QM9_VOCAB
    name = "qm9"

    def _rows(self) -> tuple[list[int], list[str]]:
        folder = qm9pack_data_folder()
        indices, smiles = [], []
        for part in (1, 2, 3):
            with open(folder / f"qm9_part{part}.csv", newline="") as handle:
                for row in csv.DictReader(handle):
                    indices.append(int(row["Index"]))
                    smiles.append(row["SMILES"])
        return indices, smiles

    def source_smiles(self) -> list[str]:
        self._qm9_index, smiles = self._rows()
        return smiles

    def held_out_rows(self, split: list) -> list[int]:
        if not hasattr(self, "_qm9_index"):
            self._qm9_index, _ = self._rows()
        position = {qm9 - 1: row for row, qm9 in enumerate(self._qm9_index)}  # QM9 row number -> our row
        return [position[int(i)] for i in split if int(i) in position]  # molecules qm9pack dropped are skipped

    def source_key(self) -> str:
        folder = qm9pack_data_folder()
        return "qm9pack:" + ",".join(str((folder / f"qm9_part{p}.csv").stat().st_size) for p in (1, 2, 3))


class SmilesDataModule(MoleculeDataModule):
    """Any SMILES file: one SMILES per line (first whitespace-separated field), or a CSV with `column`."""

    name = "smiles"

    def __init__(self, path: str, vocab: str = "zinc", column: Optional[str] = None, data_dir: str = "data",
                 batch_size: int = 256, num_workers: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 seed: int = 0, split_file: Optional[str] = None, max_molecules: Optional[int] = None):
        super().__init__(data_dir, batch_size, num_workers, val_fraction, test_fraction, seed, split_file, max_molecules)
        vocabularies = {"qm9": QM9_VOCAB, "zinc": ZINC_VOCAB}
        if vocab not in vocabularies:
            raise ValueError(f"vocab={vocab!r}; choose one of {', '.join(vocabularies)}")
        self.path, self.column, self.vocab = Path(path), column, vocabularies[vocab]

    def source_smiles(self) -> list[str]:
        return read_smiles_file(self.path, self.column)

    def source_key(self) -> str:
        if not self.path.exists():
            raise DataUnavailableError(f"SMILES file {str(self.path)!r} does not exist")
        stat = self.path.stat()
        return f"{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{self.column}"


class ZINC250kDataModule(MoleculeDataModule):
    """ZINC250k (C N O F P S Cl Br I and charged forms, at most 38 heavy atoms) from
    `250k_rndm_zinc_drugs_clean_3.csv`: read from `path`, or `data_dir`, where it is downloaded on first
    use and checked against its MD5. `split_file`: 0-based CSV row numbers held out as test."""

    vocab = ZINC_VOCAB
    name = "zinc250k"
    FILE = "250k_rndm_zinc_drugs_clean_3.csv"
    URL = "https://raw.githubusercontent.com/aspuru-guzik-group/chemical_vae/master/models/zinc_properties/" + FILE
    MD5 = "b59078b2b04c6e9431280e3dc42048d5"

    def __init__(self, data_dir: str = "data", path: Optional[str] = None, download: bool = True, batch_size: int = 128,
                 num_workers: int = 0, val_fraction: float = 0.05, test_fraction: float = 0.1, seed: int = 0,
                 split_file: Optional[str] = None, max_molecules: Optional[int] = None):
        super().__init__(data_dir, batch_size, num_workers, val_fraction, test_fraction, seed, split_file, max_molecules)
        self.path, self.download = (Path(path) if path else None), download

    def csv_path(self) -> Path:
        path = self.path or self.data_dir / self.FILE
        if path.exists():
            return path
        message = (f"ZINC250k file {str(path)!r} is missing. Download {self.URL} (MD5 {self.MD5}) and put it at "
                   f"{str(path)!r}, or pass --data.init_args.path to a copy.")
        fetch = (lambda: fetch_bytes(self.URL)) if self.path is None and self.download else None
        content = download_or_explain(fetch, message)
        digest = hashlib.md5(content).hexdigest()
        if digest != self.MD5:
            raise DataUnavailableError(f"downloaded {self.FILE} has MD5 {digest}, expected {self.MD5}; not saved")
        with atomic_path(path) as tmp:
            tmp.write_bytes(content)
        return path

    def source_smiles(self) -> list[str]:
        return [s.strip() for s in read_smiles_file(self.csv_path(), column="smiles")]

    def source_key(self) -> str:
        stat = self.csv_path().stat()
        return f"zinc250k:{stat.st_size}"
