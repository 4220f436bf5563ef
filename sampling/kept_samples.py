"""A discrete chain's samples as files: what `qgfd-sample` writes and what a sweep keeps of each setting, written
one way (the file a later `qgfd-eval --samples` reads, and a grid to look at)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from datamodules.graph_files import write_graph_npz
from models.measures.graph_statistics import is_valid
from models.measures.grids import write_graph_grid, write_molecule_grid, write_smiles


def write_graph_samples(graphs: Sequence, npz: str | Path, grid: str | Path, benchmark: str, training: Sequence = (),
                        grid_max: int = 24, per_row: int = 8) -> list[bool]:
    """The graphs as an .npz and the first grid_max in a grid (blue valid, red not) above `training` (grey); returns
    each graph's validity."""
    valid = [is_valid(g, benchmark) for g in graphs]
    write_graph_npz(graphs, npz)
    write_graph_grid(graphs[:grid_max], grid, valid[:grid_max], training, per_row=per_row)
    return valid


def write_molecule_samples(smiles: Sequence[Optional[str]], mols: Sequence, path: str | Path, grid: str | Path,
                           grid_max: int = 32, per_row: int = 8) -> None:
    """One SMILES a line (empty for an invalid sample, so line k is sample k) and the first grid_max in a grid."""
    write_smiles(smiles, path)
    write_molecule_grid(mols[:grid_max], grid, per_row=per_row)
