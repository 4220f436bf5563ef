"""The graph transformer's depth switches: 32 layers train end to end with every arm of the depth study, ReZero
layers start as the identity, and the node states it hands the collapse measures are one per layer plus the
embedding."""

from __future__ import annotations

import pytest
import torch

from models.networks.graph_transformer import GraphTransformer, GraphTransformerConfig
from qgfd_gen.attention import QGFDConfig

ARMS = {
    "vanilla": ({}, {"alpha": 0.0}),
    "qgfd-0.5": ({}, {"alpha": 0.5}),
    "qgfd-damped": ({}, {"alpha": 0.5, "alpha_mode": "damped"}),
    "qgfd-learnable": ({}, {"alpha": 0.5, "alpha_mode": "learnable"}),
    "rrwp": ({"rrwp_steps": 4}, {"alpha": 0.0}),
    "spectral": ({"spectral": "qk"}, {"alpha": 0.0}),
    "qk-norm": ({"qk_norm": True}, {"alpha": 0.0}),
    "rezero": ({"rezero": True}, {"alpha": 0.0}),
}


def tiny_graphs(batch: int = 3, n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    atoms = torch.nn.functional.one_hot(torch.randint(0, 2, (batch, n), generator=g), 2).float()
    upper = torch.triu((torch.rand(batch, n, n, generator=g) > 0.6).long(), 1)
    bonds = torch.nn.functional.one_hot(upper + upper.transpose(1, 2), 2).float()
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[0, -2:] = False
    return atoms, bonds, torch.rand(batch, generator=g), mask


def build(arm: str, layers: int = 32) -> GraphTransformer:
    network, qgfd = ARMS[arm]
    config = GraphTransformerConfig(node_dim=8, edge_dim=4, layers=layers, heads=2, **network)
    return GraphTransformer(2, 2, config, QGFDConfig(transition="adjacency", iterations=2, **qgfd), max_atoms=6)


@pytest.mark.parametrize("arm", list(ARMS))
def test_a_32_layer_transformer_trains_with_every_arm(arm):
    torch.manual_seed(0)
    network = build(arm)
    atoms, bonds, t, mask = tiny_graphs()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in network.parameters()]
    for _ in range(3):
        atom_logits, bond_logits = network(atoms, bonds, t, mask)
        loss = atom_logits[mask].logsumexp(-1).mean() - atom_logits[mask][:, 0].mean() + bond_logits.square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, network.parameters()))


def test_rezero_layers_start_as_the_identity_and_states_are_one_per_layer():
    network = build("rezero", layers=5)
    atoms, bonds, t, mask = tiny_graphs()
    states: list = []
    network(atoms, bonds, t, mask, states=states)
    assert len(states) == 6
    assert all(torch.equal(states[0], s) for s in states[1:])  # every gate starts at 0
    plain: list = []
    build("vanilla", layers=5)(atoms, bonds, t, mask, states=plain)
    assert len(plain) == 6 and not torch.equal(plain[0], plain[-1])


def test_the_states_argument_changes_no_output():
    torch.manual_seed(1)
    network = build("qgfd-0.5", layers=3)
    inputs = tiny_graphs()
    first = network(*inputs)
    second = network(*inputs, states=[])
    assert all(torch.equal(a, b) for a, b in zip(first, second))
