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


def test_validation_scores_generated_molecules_and_the_grid_callback_draws_them(tmp_path):
    """Validation samples are scored as qgfd-eval scores them (novelty against the training split, FCD
    against the test split), and the sample-grid callback writes an RDKit grid for a molecule model."""
    import lightning as L

    from conftest import read_qm9_smiles
    from datamodules import SmilesDataModule
    from models import GraphTransformerConfig, MoleculeDiffusion, OptimizerConfig, SampleGridCallback
    from qgfd_gen.attention import QGFDConfig

    smiles = tmp_path / "train.smi"
    smiles.write_text("\n".join(read_qm9_smiles(300, offset=100)) + "\n")
    torch.manual_seed(0)
    model = MoleculeDiffusion(dataset="qm9", num_train_timesteps=20, val_samples=32, val_sample_steps=5,
                              network=GraphTransformerConfig(node_dim=32, edge_dim=8, layers=2, heads=2),
                              qgfd=QGFDConfig(alpha=0.5, iterations=2, transition="adjacency"),
                              optimizer=OptimizerConfig(lr=2e-3, warmup_steps=1, ema_decay=0.5))
    grids = SampleGridCallback(every_n_epochs=1, num=8, steps=5)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                        num_sanity_val_steps=0, callbacks=[grids], default_root_dir=str(tmp_path))
    trainer.fit(model, SmilesDataModule(str(smiles), vocab="qm9", data_dir=str(tmp_path / "cache"), batch_size=32))
    logged = trainer.callback_metrics
    assert {"val/validity", "val/uniqueness", "val/novelty"} <= set(logged)
    assert 0 <= float(logged["val/novelty"]) <= 1
    assert ("val/intdiv1" in logged) == (float(logged["val/validity"]) > 0)  # diversity of the valid samples
    assert grids.last_written is not None and grids.last_written.suffix == ".png" and grids.last_written.exists()
