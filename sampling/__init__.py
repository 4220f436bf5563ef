"""Sampling and evaluation commands: `qgfd-sample` (grids, SMILES files) and `qgfd-eval` (metric sweeps)."""
