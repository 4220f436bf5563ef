"""Pictures of samples: image grids and molecule grids, written whole or not at all."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from torch import Tensor
from torchvision.utils import make_grid, save_image

from qgfd_gen.io import atomic_path


READABLE_PIXELS = 512  # a grid smaller than this is enlarged (nearest neighbour) to at least this size


def image_grid(images: Tensor, nrow: Optional[int] = None) -> Tensor:
    """images [N, C, H, W] in [0, 1] as one [C, H', W'] grid, about square, on a white background. A small
    grid (say 64 digits of 16x16, 146 pixels) is enlarged by a whole factor, each pixel a square block, so
    it can be judged by eye without blurring."""
    grid = make_grid(images, nrow=nrow or max(1, int(math.ceil(math.sqrt(len(images))))), padding=2, pad_value=1.0)
    factor = max(1, math.ceil(READABLE_PIXELS / max(grid.shape[-2:])))
    return grid.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1) if factor > 1 else grid


def write_image_grid(images: Tensor, path: str | Path, nrow: Optional[int] = None) -> Path:
    """images [N, C, H, W] in [0, 1] as one PNG grid."""
    grid = image_grid(images, nrow)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")
    return Path(path)


def write_images(images: Tensor, folder: str | Path) -> None:
    folder = Path(folder)
    for index, image in enumerate(images):
        with atomic_path(folder / f"{index:06d}.png") as tmp:
            save_image(image, tmp, format="png")


def write_npz(images: Tensor, path: str | Path) -> Path:
    """uint8 [N, H, W, C], the layout of the usual FID reference batches."""
    array = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, arr_0=array)
    return Path(path)


def write_molecule_grid(mols: Sequence, path: str | Path, per_row: int = 8, size: int = 200) -> Path:
    """RDKit grid; invalid samples (None) appear as empty cells labelled 'invalid'."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    cells = [m if m is not None else Chem.Mol() for m in mols]
    legends = [Chem.MolToSmiles(m) if m is not None else "invalid" for m in mols]
    legends = [text if len(text) <= 32 else text[:29] + "..." for text in legends]
    image = Draw.MolsToGridImage(cells, molsPerRow=per_row, subImgSize=(size, size), legends=legends)
    with atomic_path(path) as tmp:
        if hasattr(image, "save"):
            image.save(tmp, format="PNG")
        else:  # IPython Image in notebook contexts
            Path(tmp).write_bytes(image.data)
    return Path(path)


def write_smiles(smiles: Sequence[Optional[str]], path: str | Path) -> Path:
    """One line per sample, an empty line for an invalid one."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join((s or "") + "\n" for s in smiles))
    return Path(path)


def _layout(graph) -> dict:
    """Node positions: a connected graph relaxed by Kamada-Kawai from its planar embedding (no crossings) where
    one exists; a disconnected one by a seeded spring layout, since an embedding of several pieces squeezes them
    into one triangle and Kamada-Kawai needs finite distances."""
    import networkx as nx

    if len(graph) <= 2 or not nx.is_connected(graph):
        return nx.spring_layout(graph, seed=0)
    planar, embedding = nx.check_planarity(graph)
    start = nx.combinatorial_embedding_to_pos(embedding) if planar else nx.spring_layout(graph, seed=0)
    return nx.kamada_kawai_layout(graph, pos=start)


def write_graph_grid(graphs: Sequence, path: str | Path, valid: Sequence[bool], reference: Sequence = (),
                     per_row: int = 8) -> Path:
    """Generated graphs (blue when valid, red when not), then a row of training graphs (grey) to compare with;
    laid out by `_layout`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    cells = [(g, "tab:blue" if ok else "tab:red", "generated" if ok else "invalid") for g, ok in zip(graphs, valid)]
    cells += [(g, "tab:gray", "training") for g in reference]
    rows = max(1, -(-len(cells) // per_row))
    figure, axes = plt.subplots(rows, per_row, figsize=(2 * per_row, 2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (graph, colour, label) in zip(axes.ravel(), cells):
        layout = _layout(graph)
        nx.draw_networkx(graph, layout, ax=ax, node_size=8, width=0.5, with_labels=False, node_color=colour,
                         edge_color=colour)
        ax.set_title(label, fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    plt.close(figure)
    return Path(path)
