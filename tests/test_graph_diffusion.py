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
    again = model.sample(7, steps=steps, seed=0, batch_size=3)  # the same molecules whatever the batch size
    assert torch.equal(again.atoms, samples.atoms) and torch.equal(again.bonds, samples.bonds)
    assert not torch.equal(model.sample(7, steps=steps, seed=1, batch_size=4).bonds, samples.bonds)
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
    model = tiny_molecule_model().eval()
    index = torch.arange(16)
    with torch.no_grad():
        full_atoms, full_bonds, full_calls = model.diffusion.sample(model.denoiser, index, 20, seed=3)
        atoms, bonds, calls = model.diffusion.sample(model.denoiser, index, 20, seed=3, exit_tol=0.05)
    assert (full_calls == 20).all()
    ran = calls == 20
    assert ran.any() and (~ran).any()  # some molecules settled and left, others ran the whole chain ...
    assert torch.equal(atoms[ran], full_atoms[ran]) and torch.equal(bonds[ran], full_bonds[ran])  # ... unchanged
    assert (atoms[full_atoms < 0] == -1).all() and torch.equal(bonds, bonds.transpose(1, 2))
    loose = model.sample(12, steps=20, seed=3, batch_size=12, exit_tol=1.0)
    assert loose.network_evaluations < 20 and loose.atoms.shape == (12, 9)


def test_per_molecule_exit_does_not_depend_on_the_batch(tiny_molecule_model):
    model = tiny_molecule_model()
    whole = model.sample(10, steps=20, seed=4, batch_size=10, exit_tol=0.2)
    split = model.sample(10, steps=20, seed=4, batch_size=3, exit_tol=0.2)
    assert torch.equal(whole.atoms, split.atoms) and torch.equal(whole.bonds, split.bonds)
    assert whole.network_evaluations == split.network_evaluations
