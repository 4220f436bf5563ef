"""The molecule denoiser: a graph transformer whose node self-attention is QGFD over the current noisy
bond graph (adjacency transition, padding masked), with edge features as attention biases. It reads a
noisy graph and predicts the clean atom and bond types. alpha = 0 is the plain graph transformer."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from qgfd_gen import AdjacencyTransition
from qgfd_gen.attention import QGFDAttention, QGFDConfig
from qgfd_gen.config import coerce_config


@dataclass
class GraphTransformerConfig:
    """Widths and depth of the graph transformer (node features, edge features, layers, heads)."""

    node_dim: int = 128
    edge_dim: int = 32
    layers: int = 4
    heads: int = 4
    dropout: float = 0.0

    @classmethod
    def coerce(cls, value: "GraphTransformerConfig | dict | None") -> "GraphTransformerConfig":
        return coerce_config(cls, value, "network")


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * 1000.0 * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def feed_forward(dim: int, mult: int = 2, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim))


class GraphTransformerLayer(nn.Module):
    def __init__(self, node_dim: int, edge_dim: int, heads: int, qgfd: QGFDConfig, layer_index: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.node_norm = nn.LayerNorm(node_dim)
        self.attention = QGFDAttention(node_dim, heads=heads, config=qgfd, layer_index=layer_index)
        self.edge_bias = nn.Sequential(nn.LayerNorm(edge_dim), nn.Linear(edge_dim, heads))
        self.node_ff = feed_forward(node_dim, dropout=dropout)
        self.node_to_edge = nn.Linear(node_dim, edge_dim)
        self.edge_ff = feed_forward(edge_dim, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: Tensor, e: Tensor, transition: AdjacencyTransition, padding: Tensor) -> tuple[Tensor, Tensor]:
        bias = rearrange(self.edge_bias(e), "b i j h -> b h i j")
        h = h + self.dropout(self.attention(self.node_norm(h), transition=transition, key_padding_mask=padding, attn_bias=bias))
        h = h + self.node_ff(h)
        projected = self.node_to_edge(h)
        e = e + projected[:, :, None] + projected[:, None, :]  # symmetric in i, j
        e = e + self.edge_ff(e)
        return h, e


class GraphTransformer(nn.Module):
    """(noisy atoms one-hot [B, n, A], noisy bonds one-hot [B, n, n, K], t in [0, 1] [B], node mask [B, n])
    -> (atom logits [B, n, A], bond logits [B, n, n, K], symmetric)."""

    def __init__(self, num_atom_types: int, num_bond_types: int = 4, config: GraphTransformerConfig | None = None,
                 qgfd: QGFDConfig | None = None, max_atoms: int = 38):
        super().__init__()
        config = config or GraphTransformerConfig()
        qgfd = qgfd or QGFDConfig(transition="adjacency")
        node_dim, edge_dim = config.node_dim, config.edge_dim
        self.num_bond_types, self.max_atoms = num_bond_types, max_atoms
        extra = max_atoms + 1 + 8  # graph size one-hot, valence (sum of bond orders) one-hot
        self.node_in = nn.Linear(num_atom_types + extra, node_dim)
        self.edge_in = nn.Linear(num_bond_types, edge_dim)
        self.time_node = nn.Sequential(nn.Linear(node_dim, node_dim), nn.SiLU(), nn.Linear(node_dim, node_dim))
        self.time_edge = nn.Linear(node_dim, edge_dim)
        self.layers = nn.ModuleList(
            GraphTransformerLayer(node_dim, edge_dim, config.heads, qgfd, index, config.dropout)
            for index in range(config.layers)
        )
        self.node_out = nn.Sequential(nn.LayerNorm(node_dim), nn.Linear(node_dim, num_atom_types))
        self.edge_out = nn.Sequential(nn.LayerNorm(edge_dim), nn.Linear(edge_dim, num_bond_types))

    def forward(self, atoms: Tensor, bonds: Tensor, t: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
        b, n, _ = atoms.shape
        pair_mask = node_mask[:, :, None] & node_mask[:, None, :]
        bond_order = (bonds * torch.arange(self.num_bond_types, device=bonds.device, dtype=bonds.dtype)).sum(-1)
        valence = (bond_order * pair_mask).sum(-1).round().long().clamp(max=7)
        size = node_mask.sum(-1).clamp(max=self.max_atoms)
        features = torch.cat([
            atoms,
            F.one_hot(size, self.max_atoms + 1)[:, None].expand(b, n, -1).to(atoms.dtype),
            F.one_hot(valence, 8).to(atoms.dtype),
        ], dim=-1)
        time = self.time_node(timestep_embedding(t, self.node_in.out_features))
        h = self.node_in(features) + time[:, None]
        e = self.edge_in(bonds) + self.time_edge(time)[:, None, None]
        # the current noisy bond graph is what QGFD diffuses over; padded atoms are masked out of it
        adjacency = (bonds[..., 1:].sum(-1) > 0.5) & pair_mask
        transition = AdjacencyTransition(adjacency)  # bool: the bind casts it once
        padding = ~node_mask
        for layer in self.layers:
            h, e = layer(h, e, transition, padding)
        edge_logits = self.edge_out(e)
        edge_logits = (edge_logits + edge_logits.transpose(1, 2)) / 2
        return self.node_out(h), edge_logits
