"""qgfd-gen: generative diffusion models whose attention is Query-Graph-Flow-Diffusion (QGFD)."""

from .operator import QGFDStats, diffuse_values, qgfd_attention, qgfd_fixed_point, qgfd_reference
from .transitions import (
    AdjacencyTransition,
    DenseTransition,
    GridTransition,
    KNNTransition,
    MatrixTransition,
    Transition,
    TransitionOperator,
)

__all__ = [
    "AdjacencyTransition",
    "DenseTransition",
    "GridTransition",
    "KNNTransition",
    "MatrixTransition",
    "QGFDStats",
    "Transition",
    "TransitionOperator",
    "diffuse_values",
    "qgfd_attention",
    "qgfd_fixed_point",
    "qgfd_reference",
]
