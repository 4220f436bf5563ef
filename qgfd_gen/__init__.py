"""qgfd-gen: generative diffusion models whose attention is Query-Graph-Flow-Diffusion (QGFD).

The public names load on first use (`qgfd_gen.lazy`), so that importing a small part of the package (its errors,
its file helpers) does not load torch.
"""

from .lazy import lazy_exports

_EXPORTS = {
    **{name: ".operator" for name in ("QGFDStats", "diffuse_values", "qgfd_attention", "qgfd_fixed_point",
                                      "qgfd_reference")},
    **{name: ".transitions" for name in ("AdjacencyTransition", "DenseTransition", "GridTransition", "KNNTransition",
                                         "MatrixTransition", "Transition", "TransitionOperator")},
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
