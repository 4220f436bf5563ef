"""Grids people can read: small images are enlarged by whole factors, pixel for pixel."""

from __future__ import annotations

import torch
from PIL import Image

from models.measures.grids import READABLE_PIXELS, image_grid, write_image_grid


def test_a_small_grid_is_enlarged_nearest_neighbour_to_a_readable_size(tmp_path):
    images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    grid = image_grid(images)
    side = 8 * (16 + 2) + 2  # 146 pixels before enlarging
    factor = -(-READABLE_PIXELS // side)
    assert grid.shape[-2:] == (side * factor, side * factor) and side * factor >= READABLE_PIXELS
    # each original pixel is a factor x factor block of one value: the first image's top-left pixel
    block = grid[0, 2 * factor : 3 * factor, 2 * factor : 3 * factor]
    assert torch.equal(block, torch.full_like(block, float(images[0, 0, 0, 0])))
    path = write_image_grid(images, tmp_path / "grid.png")
    assert Image.open(path).size == (side * factor, side * factor)


def test_a_large_grid_is_left_as_it_is():
    images = torch.rand(64, 3, 64, 64)
    assert image_grid(images).shape[-2:] == (8 * 66 + 2, 8 * 66 + 2)
