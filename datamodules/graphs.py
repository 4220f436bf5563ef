"""What every graph data module shares, molecules and synthetic graphs alike: padded (atoms, bonds) batches trimmed
to their largest graph, the loaders, and the counts that set the discrete chain's noise limit."""

from __future__ import annotations

from typing import Sequence

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .loaders import evaluation_loader, training_loader


def collate_graphs(batch: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Stack padded graphs and trim the padding to the largest graph of the batch."""
    atoms = torch.stack([a for a, _ in batch])
    bonds = torch.stack([b for _, b in batch])
    n = int((atoms >= 0).sum(1).max())
    return atoms[:, :n], bonds[:, :n, :n]


def graph_counts(atoms: Tensor, bonds: Tensor, num_atom_types: int, num_bond_types: int,
                 max_atoms: int) -> tuple[Tensor, Tensor, Tensor]:
    """Counts of atom (node) types, bond (edge) types over distinct node pairs (0 = none) and graph sizes, from
    padded graphs (atoms -1 at padding)."""
    real = atoms >= 0
    n = atoms.shape[1]
    pairs = real[:, :, None] & real[:, None, :] & torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return (torch.bincount(atoms[real], minlength=num_atom_types).double(),
            torch.bincount(bonds.long()[pairs], minlength=num_bond_types).double(),
            torch.bincount(real.sum(1), minlength=max_atoms + 1).double())


class GraphDataModule(L.LightningDataModule):
    """Loaders over `dataset(split)` (train in an order that survives a resume, its last partial batch dropped);
    subclasses set batch_size and num_workers and provide `dataset`."""

    batch_size: int
    num_workers: int

    def dataset(self, split: str) -> Dataset:
        raise NotImplementedError

    def _loader(self, split: str) -> DataLoader:
        return evaluation_loader(self.dataset(split), self.batch_size, self.num_workers, collate_graphs)

    def train_dataloader(self) -> DataLoader:
        return training_loader(self.dataset("train"), self.batch_size, self.num_workers, self.trainer,
                               collate_fn=collate_graphs)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
