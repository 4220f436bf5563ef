"""The molecule denoiser: a graph transformer whose node self-attention is QGFD over a bond graph (adjacency
transition, padding masked), with edge features as attention biases. It reads a noisy graph and predicts the
clean atom and bond types. alpha = 0 is the plain graph transformer.

Switches (GraphTransformerConfig), each off by default:
- `rrwp_steps` K > 0: random-walk structural features of the noisy graph (models.networks.structure) enter the
  node and edge embeddings;
- `alpha_by_signal`: each sample's QGFD alpha is scaled by the share of bonds the chain has not yet corrupted at
  its timestep (alpha_bar(t) of the bond chain), so QGFD leans on the noisy graph only when it carries signal;
- `rezero`: each residual branch is scaled by a learnable gate that starts at 0 (ReZero, Bachlechner et al. 2021),
  so every layer starts as the identity: a non-contractive remedy for deep stacks collapsing their node states;
- `graph`: which graph QGFD diffuses over at each layer: `noisy` (the input's bonds), `predicted` (the soft graph
  of bond probabilities the layer's edge state predicts through the output head), or `mixed` (`graph_mix` of the
  noisy graph plus the rest predicted); `graph_grad` lets gradients flow through the predicted graph."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from qgfd_gen import AdjacencyTransition
from qgfd_gen.attention import QGFDAttention, QGFDConfig
from qgfd_gen.config import coerce_config
from qgfd_gen.spectral import check_spectral

from .structure import random_walk_features


@dataclass
class GraphTransformerConfig:
    """Widths and depth of the graph transformer (node features, edge features, layers, heads)."""

    node_dim: int = 128
    edge_dim: int = 32
    layers: int = 4
    heads: int = 4
    dropout: float = 0.0
    rrwp_steps: int = 0  # random-walk features P^1..P^K of the noisy graph; 0: none
    alpha_by_signal: bool = False  # QGFD alpha times the bond chain's alpha_bar(t)
    graph: str = "noisy"  # what QGFD diffuses over: noisy | predicted | mixed
    graph_mix: float = 0.5  # mixed: this share of the noisy graph, the rest predicted
    graph_grad: bool = False  # predicted / mixed: gradients flow through the predicted graph
    qk_norm: bool = False  # LayerNorm on each head's queries and keys (QK-norm)
    spectral: str = "none"  # sigmaReparam on the attention projections: none | qk | all (qgfd_gen.spectral)
    rezero: bool = False  # each residual branch times a learnable gate starting at 0 (ReZero)

    def __post_init__(self) -> None:
        if isinstance(self.rrwp_steps, bool) or not isinstance(self.rrwp_steps, int) or self.rrwp_steps < 0:
            raise ValueError(f"rrwp_steps={self.rrwp_steps!r}; need a non-negative integer (0: no random-walk features)")
        if self.graph not in GRAPHS:
            raise ValueError(f"graph={self.graph!r}; choose one of {', '.join(GRAPHS)}")
        if not 0 <= self.graph_mix <= 1:
            raise ValueError(f"graph_mix={self.graph_mix!r}; need a share in [0, 1]")
        check_spectral(self.spectral)

    @classmethod
    def coerce(cls, value: "GraphTransformerConfig | dict | None") -> "GraphTransformerConfig":
        return coerce_config(cls, value, "network")


GRAPHS = ("noisy", "predicted", "mixed")


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def feed_forward(dim: int, mult: int = 2, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim))


class GraphTransformerLayer(nn.Module):
    def __init__(self, node_dim: int, edge_dim: int, heads: int, qgfd: QGFDConfig, layer_index: int, dropout: float,
                 qk_norm: bool = False, spectral: str = "none", rezero: bool = False):
        super().__init__()
        self.heads = heads
        # ReZero: the attention, node, edge and edge feed-forward branches each times a gate that starts at 0
        self.gates = nn.Parameter(torch.zeros(4)) if rezero else None
        self.node_norm = nn.LayerNorm(node_dim)
        self.attention = QGFDAttention(node_dim, heads=heads, config=qgfd, layer_index=layer_index, qk_norm=qk_norm,
                                       spectral=spectral)
        self.edge_bias = nn.Sequential(nn.LayerNorm(edge_dim), nn.Linear(edge_dim, heads))
        self.node_ff = feed_forward(node_dim, dropout=dropout)
        self.node_to_edge = nn.Linear(node_dim, edge_dim)
        self.edge_ff = feed_forward(edge_dim, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: Tensor, e: Tensor, transition: AdjacencyTransition, padding: Tensor,
                alpha_scale: Tensor | None = None) -> tuple[Tensor, Tensor]:
        bias = rearrange(self.edge_bias(e), "b i j h -> b h i j")
        attended = self.attention(self.node_norm(h), transition=transition, key_padding_mask=padding, attn_bias=bias,
                                  alpha_scale=alpha_scale)
        h = h + self.gated(0, self.dropout(attended))
        h = h + self.gated(1, self.node_ff(h))
        projected = self.node_to_edge(h)
        e = e + self.gated(2, projected[:, :, None] + projected[:, None, :])  # symmetric in i, j
        e = e + self.gated(3, self.edge_ff(e))
        return h, e

    def gated(self, index: int, branch: Tensor) -> Tensor:
        return branch if self.gates is None else self.gates[index] * branch


class GraphTransformer(nn.Module):
    """(noisy atoms one-hot [B, n, A], noisy bonds one-hot [B, n, n, K], t in [0, 1] [B], node mask [B, n])
    -> (atom logits [B, n, A], bond logits [B, n, n, K], symmetric)."""

    def __init__(self, num_atom_types: int, num_bond_types: int = 4, config: GraphTransformerConfig | None = None,
                 qgfd: QGFDConfig | None = None, max_atoms: int = 38, bond_signal: Tensor | None = None):
        """bond_signal [T + 1]: the bond chain's alpha_bar at each timestep (needed by `alpha_by_signal`)."""
        super().__init__()
        config = config or GraphTransformerConfig()
        qgfd = qgfd or QGFDConfig(transition="adjacency")
        node_dim, edge_dim = config.node_dim, config.edge_dim
        self.config = config
        self.num_bond_types, self.max_atoms = num_bond_types, max_atoms
        if config.alpha_by_signal and bond_signal is None:
            raise ValueError("alpha_by_signal needs the bond chain's alpha_bar (bond_signal)")
        # not saved with the weights: it is the chain's own schedule, rebuilt with the model
        self.register_buffer("bond_signal", None if bond_signal is None else bond_signal.float(), persistent=False)
        extra = max_atoms + 1 + 8 + config.rrwp_steps  # size one-hot, valence one-hot, return probabilities
        self.node_in = nn.Linear(num_atom_types + extra, node_dim)
        self.edge_in = nn.Linear(num_bond_types + config.rrwp_steps, edge_dim)
        self.time_node = nn.Sequential(nn.Linear(node_dim, node_dim), nn.SiLU(), nn.Linear(node_dim, node_dim))
        self.time_edge = nn.Linear(node_dim, edge_dim)
        self.layers = nn.ModuleList(
            GraphTransformerLayer(node_dim, edge_dim, config.heads, qgfd, index, config.dropout, config.qk_norm,
                                  config.spectral, config.rezero)
            for index in range(config.layers)
        )
        self.node_out = nn.Sequential(nn.LayerNorm(node_dim), nn.Linear(node_dim, num_atom_types))
        self.edge_out = nn.Sequential(nn.LayerNorm(edge_dim), nn.Linear(edge_dim, num_bond_types))

    def forward(self, atoms: Tensor, bonds: Tensor, t: Tensor, node_mask: Tensor, states: Optional[list[Tensor]] = None
                ) -> tuple[Tensor, Tensor]:
        """`states`, when given a list, receives the node states [B, n, node_dim]: the input embedding, then each
        layer's output (for the collapse measures, models.measures.collapse)."""
        b, n, _ = atoms.shape
        pair_mask = node_mask[:, :, None] & node_mask[:, None, :]
        bond_order = (bonds * torch.arange(self.num_bond_types, device=bonds.device, dtype=bonds.dtype)).sum(-1)
        valence = (bond_order * pair_mask).sum(-1).round().long().clamp(max=7)
        size = node_mask.sum(-1).clamp(max=self.max_atoms)
        adjacency = self.noisy_graph(bonds, node_mask)
        node_extra, edge_extra = [], []
        if self.config.rrwp_steps:
            walk_node, walk_pair = random_walk_features(adjacency, self.config.rrwp_steps)
            node_extra, edge_extra = [walk_node.to(atoms.dtype)], [walk_pair.to(bonds.dtype)]
        features = torch.cat([
            atoms,
            F.one_hot(size, self.max_atoms + 1)[:, None].expand(b, n, -1).to(atoms.dtype),
            F.one_hot(valence, 8).to(atoms.dtype),
            *node_extra,
        ], dim=-1)
        time = self.time_node(timestep_embedding(t, self.node_in.out_features))
        h = self.node_in(features) + time[:, None]
        e = self.edge_in(torch.cat([bonds, *edge_extra], dim=-1)) + self.time_edge(time)[:, None, None]
        noisy = AdjacencyTransition(adjacency)  # bool: the bind casts it once
        alpha_scale = self.signal_share(t) if self.config.alpha_by_signal else None
        padding = ~node_mask
        if states is not None:
            states.append(h)
        for layer in self.layers:
            transition = noisy if self.config.graph == "noisy" else self.believed_graph(e, adjacency, pair_mask)
            h, e = layer(h, e, transition, padding, alpha_scale)
            if states is not None:
                states.append(h)
        return self.node_out(h), self.bond_logits(e)

    @staticmethod
    def noisy_graph(bonds: Tensor, node_mask: Tensor) -> Tensor:
        """The graph of the input's bonds [B, n, n] (bool): any bond type but 'none', padded atoms masked out."""
        pair_mask = node_mask[:, :, None] & node_mask[:, None, :]
        return (bonds[..., 1:].sum(-1) > 0.5) & pair_mask

    def bond_logits(self, e: Tensor) -> Tensor:
        logits = self.edge_out(e)
        return (logits + logits.transpose(1, 2)) / 2

    def signal_share(self, t: Tensor) -> Tensor:
        """alpha_bar of the bond chain at each sample's timestep t in [0, 1]: the share of bonds not yet resampled."""
        steps = self.bond_signal.shape[0] - 1
        return self.bond_signal[(t.float() * steps).round().long().clamp(0, steps)]

    def believed_graph(self, e: Tensor, noisy: Tensor, pair_mask: Tensor) -> AdjacencyTransition:
        """The soft graph the edge state predicts (probability of any bond, diagonal and padding zero), alone or
        mixed with the noisy one; detached unless `graph_grad`."""
        believed = 1 - torch.softmax(self.bond_logits(e).float(), dim=-1)[..., 0]
        if not self.config.graph_grad:
            believed = believed.detach()
        eye = torch.eye(e.shape[1], dtype=torch.bool, device=e.device)
        believed = believed * (pair_mask & ~eye)
        if self.config.graph == "mixed":
            mix = self.config.graph_mix
            believed = mix * noisy.float() + (1 - mix) * believed
        return AdjacencyTransition(believed)
