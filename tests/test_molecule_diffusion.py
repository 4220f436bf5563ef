"""The molecule LightningModule and its denoiser: the loss falls, alpha 0 is the plain graph transformer."""

import torch

from qgfd_gen.attention import QGFDConfig


def test_optimisation_on_a_fixed_batch_lowers_the_loss(tiny_molecule_model):
    model = tiny_molecule_model()
    atoms, bonds = (t[:64] for t in model.example_graphs)
    optimizer = model.configure_optimizers()["optimizer"]
    t = torch.randint(1, 21, (64,), generator=torch.Generator().manual_seed(0))

    def loss_now():
        torch.manual_seed(1)
        return model.diffusion.loss(model.denoiser, atoms, bonds, t, edge_weight=5.0)[0]

    before = float(loss_now().detach())
    for _ in range(30):
        optimizer.zero_grad()
        loss_now().backward()
        optimizer.step()
    assert float(loss_now().detach()) < 0.7 * before


def test_alpha_zero_denoiser_is_the_plain_graph_transformer(tiny_molecule_model):
    model = tiny_molecule_model()
    plain = tiny_molecule_model(qgfd=QGFDConfig(alpha=0.0, iterations=2, transition="adjacency"))
    plain.load_state_dict(model.state_dict())
    atoms, bonds = (t[200:204] for t in model.example_graphs)  # several bonds each (QM9 starts with CH4, NH3 ...)
    assert (bonds > 0).sum() > 20
    x = torch.nn.functional.one_hot(atoms.clamp(min=0), 4).float()
    e = torch.nn.functional.one_hot(bonds, 4).float()
    mask, t = atoms >= 0, torch.full((4,), 0.5)
    assert (model.denoiser(x, e, t, mask)[0] - plain.denoiser(x, e, t, mask)[0]).abs().max() > 1e-4
    for layer in plain.denoiser.layers:  # alpha = 0 is exactly attention with edge biases
        assert layer.attention.alpha() == 0.0
    assert plain.denoiser(x, e, t, mask)[0].shape == (4, 9, 4)
