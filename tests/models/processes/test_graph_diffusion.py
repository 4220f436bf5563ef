"""The molecule chain: sampling through the LightningModule, jumps, and the per-molecule early exit."""

import pytest
import torch

from models.processes.graph_diffusion import changed_fraction

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["qgfd_gen.counter_noise"]


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
    with pytest.raises(ValueError, match="exit_share=1.5"):
        model.sample(2, exit_share=1.5)


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
        atoms, bonds, calls = model.diffusion.sample(model.denoiser, index, 20, seed=3, exit_share=0.1)
    assert (full_calls == 20).all()
    ran = calls == 20
    assert ran.any() and (~ran).any()  # some molecules settled and left, others ran the whole chain ...
    assert torch.equal(atoms[ran], full_atoms[ran]) and torch.equal(bonds[ran], full_bonds[ran])  # ... unchanged
    assert (atoms[full_atoms < 0] == -1).all() and torch.equal(bonds, bonds.transpose(1, 2))
    assert (calls[~ran] >= 3).all()  # a stretch of 0.1 * 20 timesteps: the first settled step and two more


def test_the_stretch_is_counted_in_timesteps_not_steps(tiny_molecule_model):
    """One tolerance asks for the same share of the chain at every step count. A denoiser that always predicts
    the same graph settles at its second call (t = T - stride); with exit_share 0.25 of T = 20 timesteps, the
    molecule leaves at the first step at least 5 timesteps later: t = 14 at 20 steps, 12 at 10, 10 at 4."""
    model = tiny_molecule_model()

    def steady(x, e, t, node_mask):  # always the same clean graph: carbons, no bonds
        return x.new_full(x.shape, -9.0).index_fill(-1, torch.tensor([0]), 9.0), e.new_full(e.shape, -9.0).index_fill(-1, torch.tensor([0]), 9.0)

    left_at = {}
    for steps in (20, 10, 4):
        _, _, calls = model.diffusion.sample(steady, torch.arange(5), steps, seed=0, exit_share=0.25)
        stride = 20 // steps
        left_at[steps] = set((20 - stride * (calls - 1)).tolist())  # the timestep of the last call
    assert left_at == {20: {14}, 10: {12}, 4: {10}}


def test_a_molecule_that_never_settles_is_the_full_chain(tiny_molecule_model):
    model = tiny_molecule_model().eval()
    index = torch.arange(16)
    refuse = lambda atoms, bonds: torch.zeros(len(atoms), dtype=torch.bool)  # noqa: E731  no molecule is acceptable
    with torch.no_grad():
        full = model.diffusion.sample(model.denoiser, index, 20, seed=3)
        never = model.diffusion.sample(model.denoiser, index, 20, seed=3, exit_share=0.1, is_settled=refuse)
    assert all(torch.equal(a, b) for a, b in zip(full, never))


def test_only_valid_connected_molecules_leave_early(tiny_molecule_model):
    model = tiny_molecule_model().eval()
    with torch.no_grad():
        atoms, bonds, calls = model.diffusion.sample(model.denoiser, torch.arange(64), 20, seed=3, exit_share=0.1,
                                                     is_settled=model.is_connected_molecule)
    left = calls < 20
    assert left.any()
    assert model.is_connected_molecule(atoms[left], bonds[left]).all()


def test_per_molecule_exit_does_not_depend_on_the_batch(tiny_molecule_model):
    model = tiny_molecule_model()
    whole = model.sample(10, steps=20, seed=4, batch_size=10, exit_share=0.2)
    split = model.sample(10, steps=20, seed=4, batch_size=3, exit_share=0.2)
    assert torch.equal(whole.atoms, split.atoms) and torch.equal(whole.bonds, split.bonds)
    assert whole.network_evaluations == split.network_evaluations
