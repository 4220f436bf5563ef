"""Graphs without attributes (the planar and tree benchmarks): the molecule chain and denoiser with one node type
and two edge states (absent, present), sampled graphs returned as networkx graphs and scored as the field scores
them (V.U.N. and the degree / clustering / orbit / spectrum MMDs of models.measures.graph_statistics).

What is trained is the same as for molecules (GraphChainModule): the denoiser predicts the clean edges of a noisy
graph, cross-entropy on every node pair; graph sizes and the edge density of the noise limit come from the
training set. The benchmark (planar | tree) says which graphs are valid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import networkx as nx
import torch
from torch import Tensor

from models.measures.graph_statistics import HEADLINE_SCORES, GraphReference, is_valid
from models.networks.graph_transformer import GraphTransformerConfig
from models.processes.samples import SampleSet
from qgfd_gen.attention import QGFDConfig

from .graph_chain import GraphChainModule
from .optimization import OptimizerConfig

BENCHMARKS = ("planar", "tree")


@dataclass
class GraphSamples(SampleSet):
    """Graphs as padded tensors and as networkx graphs, and what producing them cost."""

    atoms: Tensor  # [num, n]: 0 for a node, -1 for padding
    bonds: Tensor  # [num, n, n]: 1 for an edge
    graphs: list  # networkx graphs, nodes 0..size-1


def to_networkx(atoms: Tensor, bonds: Tensor) -> list[nx.Graph]:
    """Padded graphs as networkx graphs of their real nodes (padding dropped, the upper triangle read)."""
    graphs = []
    for node_row, edge_matrix in zip(atoms, bonds):
        size = int((node_row >= 0).sum())
        graph = nx.Graph()
        graph.add_nodes_from(range(size))
        edges = torch.triu(edge_matrix[:size, :size] > 0, diagonal=1).nonzero().tolist()
        graph.add_edges_from(map(tuple, edges))
        graphs.append(graph)
    return graphs


class GraphGeneration(GraphChainModule):
    """Discrete graph diffusion for non-attributed graphs (the planar and tree benchmarks): the molecule model's
    chain and denoiser with one node type and an edge present or absent.

    Args:
        benchmark: ``planar`` or ``tree``: which graphs are valid.
        max_nodes: the largest graph.
        num_train_timesteps: the chain's length.
        network: the graph transformer (`GraphTransformerConfig`; rrwp_steps, alpha_by_signal and graph as for
            molecules).
        qgfd: QGFD over the noisy edge graph (`QGFDConfig`); alpha 0 is the plain graph transformer.
        edge_weight: the edge loss's weight.
        optimizer: AdamW, warm-up, clipping and EMA (`OptimizerConfig`).
        val_samples: graphs sampled after each validation and scored against the data module's training and
            test graphs (V.U.N., MMDs); 0 samples none.
        val_sample_steps: sampler steps of those samples.
        test_samples: graphs `lightning test` samples and scores.

    Raises:
        ValueError: an unknown benchmark or a value out of range, named.
    """

    kind = "graphs"

    def __init__(self, benchmark: str = "planar", max_nodes: int = 64, num_train_timesteps: int = 500,
                 network: Optional[GraphTransformerConfig] = None, qgfd: Optional[QGFDConfig] = None,
                 edge_weight: float = 5.0, optimizer: Optional[OptimizerConfig] = None,
                 val_samples: int = 0, val_sample_steps: int = 100, test_samples: int = 40):
        super().__init__()
        if benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark={benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
        if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 2:
            raise ValueError(f"max_nodes={max_nodes!r}; need an integer >= 2")
        self.save_hyperparameters()
        self.benchmark = benchmark
        self.build_chain(1, 2, max_nodes, num_train_timesteps, network, qgfd, optimizer, edges="edges")

    def sample(self, num: int, steps: Optional[int] = None, seed: int = 0, use_ema: bool = True, batch_size: int = 256,
               exit_share: Optional[float] = None, progress: Optional[Callable[[int], None]] = None,
               batches: Optional[Sequence[int]] = None) -> GraphSamples:
        """`num` graphs: sizes from the training distribution, then the reverse chain in `steps` jumps (all
        timesteps when None); graph i depends on (seed, i) only. exit_share in (0, 1]: a graph leaves the batch
        once its predicted clean graph stayed the same valid graph over that share of the chain's timesteps."""
        atoms, bonds, used, qgfd_iterations, seconds = self.draw_graphs(
            num, steps, seed, use_ema, batch_size, exit_share, self.is_valid_graph, progress, batches)
        return GraphSamples(evaluations=used, rejected=torch.zeros_like(used), qgfd_iterations=qgfd_iterations,
                            seconds=seconds, atoms=atoms, bonds=bonds, graphs=to_networkx(atoms, bonds))

    def is_valid_graph(self, atoms: Tensor, bonds: Tensor) -> Tensor:
        """[B] bool: which padded graphs are valid for the benchmark (planar and connected, or a tree)."""
        graphs = to_networkx(atoms.cpu(), bonds.cpu())
        return torch.tensor([is_valid(g, self.benchmark) for g in graphs], dtype=torch.bool)

    def _score(self, num: int, split: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not num or datamodule is None or not hasattr(datamodule, "graphs"):
            return
        if getattr(self, "_reference", None) is None:  # one per run: the ratios' baseline is the data set's
            self._reference = GraphReference(datamodule.graphs("train"), datamodule.graphs("test"), self.benchmark)
        scores = self._reference.score(self.sample(num, steps=self.hparams.val_sample_steps, seed=0).graphs)
        self.log_dict({f"{split}/{k}": float(scores[k]) for k in HEADLINE_SCORES}, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._score(self.hparams.val_samples, "val")

    def on_test_epoch_end(self) -> None:
        self._score(self.hparams.test_samples, "test")
