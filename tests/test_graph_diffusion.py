"""The molecule chain: sampling through the LightningModule, jumps, and the per-molecule early exit."""

import pytest
import torch

from models.graph_diffusion import changed_fraction


@pytest.mark.parametrize("steps", [None, 5])
def test_sampling_returns_the_requested_molecules(steps, tiny_molecule_model):
    model = tiny_molecule_model()
    samples = model.sample(7, steps=steps, seed=0, batch_size=4)
    assert len(samples.smiles) == len(samples.mols) == 7
    assert samples.network_evaluations == (20 if steps is None else 5)
    assert samples.qgfd_iterations == 2.0
    assert samples.atoms.shape == (7, 9)
    assert all((s is None) == (m is None) for s, m in zip(samples.smiles, samples.mols))
    assert model.sample(7, steps=steps, seed=0, batch_size=4).smiles == samples.smiles
    with pytest.raises(ValueError, match="steps=21"):
        model.sample(2, steps=21)
    with pytest.raises(ValueError, match="exit_tol=1.5"):
        model.sample(2, exit_tol=1.5)


def test_changed_fraction_is_per_molecule():
    mask = torch.tensor([[True, True, False], [True, True, True]])
    atoms = torch.zeros(2, 3, dtype=torch.long)
    bonds = torch.zeros(2, 3, 3, dtype=torch.long)
    other_atoms = atoms.clone()
    other_atoms[1, 2] = 1  # molecule 1: one of 3 atoms and 3 pairs changed
    other_atoms[0, 2] = 1  # molecule 0: a padded atom changed: does not count
    assert changed_fraction((atoms, bonds), (other_atoms, bonds), mask).tolist() == [0.0, pytest.approx(1 / 6)]


def test_early_exit_is_per_molecule(tiny_molecule_model):
    model = tiny_molecule_model()
    full = model.sample(12, steps=20, seed=3, batch_size=12)
    never = model.sample(12, steps=20, seed=3, batch_size=12, exit_tol=1e-9)
    assert never.network_evaluations == 20  # a molecule that never settles runs the full chain ...
    assert torch.equal(never.atoms, full.atoms) and torch.equal(never.bonds, full.bonds)  # ... to the same graph
    loose = model.sample(12, steps=20, seed=3, batch_size=12, exit_tol=1.0)
    assert loose.network_evaluations < 20  # settled molecules left the batch
    assert loose.atoms.shape == full.atoms.shape and (loose.atoms[full.atoms < 0] == -1).all()
    assert torch.equal(loose.bonds, loose.bonds.transpose(1, 2))
