"""Molecules: chemistry round trips, data modules, discrete diffusion, the graph denoiser and sampling."""

import csv
import json
from pathlib import Path

import pytest
import torch

from datamodules import DataUnavailableError, QM9DataModule, SmilesDataModule, ZINC250kDataModule
from datamodules.molecules import qm9pack_data_folder
from models import MoleculeDiffusion
from models.discrete_diffusion import MarginalDiffusion
from qgfd_gen.attention import QGFDConfig
from qgfd_gen.chemistry import (
    QM9_VOCAB,
    ZINC_VOCAB,
    NotInVocabulary,
    canonical_smiles,
    encode_smiles,
    graph_to_mol,
    graph_to_smiles,
    smiles_to_graph,
)
from qgfd_gen.cli import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

# ZINC-like molecules with charges, aromatic rings, halogens, P and S
ZINC_LIKE = [
    "CC(C)(C)c1ccc2occ(CC(=O)Nc3ccccc3F)c2c1",
    "C[NH+]1CCC(NC(=O)c2ccc(Cl)cc2)CC1",
    "O=[N+]([O-])c1ccc(S(=O)(=O)N2CCOCC2)cc1",
    "CC[NH2+]C1CCCC1C(=O)[O-]",
    "Brc1ccc(-c2nnc(SCC(=O)N3CCCC3)o2)cc1",
    "COP(=O)(OC)C(O)c1ccc(I)cc1",
    "C[n+]1ccccc1",
    "[NH3+]CCc1c[nH]c2ccccc12",
    "CC(=O)N[C@@H](Cc1ccccc1)C(=O)[O-]",
    "N#Cc1ccccc1[S-]",
]


def qm9_smiles(count: int) -> list[str]:
    with open(qm9pack_data_folder() / "qm9_part1.csv", newline="") as handle:
        rows = [row["SMILES"] for _, row in zip(range(count), csv.DictReader(handle))]
    return rows


def test_round_trip_is_exact_on_qm9():
    checked = 0
    for smiles in qm9_smiles(400):
        try:
            atoms, bonds = smiles_to_graph(smiles, QM9_VOCAB)
        except NotInVocabulary:
            continue
        assert graph_to_smiles(atoms, bonds, QM9_VOCAB) == canonical_smiles(smiles), smiles
        checked += 1
    assert checked >= 390


def test_round_trip_keeps_charges_on_zinc_like_molecules():
    for smiles in ZINC_LIKE:
        atoms, bonds = smiles_to_graph(smiles, ZINC_VOCAB)
        assert graph_to_smiles(atoms, bonds, ZINC_VOCAB) == canonical_smiles(smiles), smiles
    atoms, _ = smiles_to_graph("O=[N+]([O-])c1ccccc1", ZINC_VOCAB)
    assert {ZINC_VOCAB.tokens[i] for i in atoms.tolist()} == {"O", "N+", "O-", "C"}


def test_graphs_are_kekulized_with_three_bond_types():
    atoms, bonds = smiles_to_graph("c1ccccc1", QM9_VOCAB)
    assert sorted(bonds[torch.triu(torch.ones(6, 6, dtype=torch.bool), 1)].tolist()).count(2) == 3
    assert set(bonds.unique().tolist()) == {0, 1, 2}


def test_invalid_graph_is_none_without_correction_and_fixed_with_it():
    atoms = torch.tensor([0, 0, 0, 0, 0, 0])  # a carbon with five bonds
    bonds = torch.zeros(6, 6, dtype=torch.long)
    for j in range(1, 6):
        bonds[0, j] = bonds[j, 0] = 1
    assert graph_to_mol(atoms, bonds, QM9_VOCAB) is None
    fixed = graph_to_mol(atoms, bonds, QM9_VOCAB, correct=True)
    assert fixed is not None and max(a.GetDegree() for a in fixed.GetAtoms()) <= 4


def test_encoding_skips_and_counts_bad_smiles():
    encoded = encode_smiles(["CCO", "not a smiles", "C1CC", "[Na+].[Cl-]", "c1ccccc1", "CCCCCCCCCC"], QM9_VOCAB)
    assert encoded.smiles == ["CCO", "c1ccccc1"]
    assert encoded.skipped == {"unparsable": 2, "outside vocabulary": 2}  # Na/Cl; 10 atoms > 9
    assert encoded.atoms.shape == (2, 9) and (encoded.atoms[0, 3:] == -1).all()


def test_marginal_transitions_are_row_stochastic_and_compose():
    diffusion = MarginalDiffusion(torch.tensor([5.0, 3.0, 1.0, 1.0]), steps=50)
    t = torch.tensor([1, 10, 50])
    q = diffusion.transition(t)
    assert torch.allclose(q.sum(-1), torch.ones(3, 4, dtype=torch.float64))
    # Qbar_t equals the product of the single-step matrices Q_1 ... Q_t
    product = torch.eye(4, dtype=torch.float64)
    for step in range(1, 11):
        product = product @ diffusion.transition(torch.tensor([step]), torch.tensor([step - 1]))[0]
    assert torch.allclose(product, diffusion.transition(torch.tensor([10]))[0], atol=1e-12)
    # the limit is the marginal distribution
    assert torch.allclose(diffusion.transition(torch.tensor([50]))[0], diffusion.marginals.expand(4, 4), atol=1e-3)
    # posterior rows are distributions, and with a certain x0 at s = 0 it returns that x0
    x_t = torch.nn.functional.one_hot(torch.tensor([[1, 2]]), 4).double()
    p_x0 = torch.nn.functional.one_hot(torch.tensor([[3, 0]]), 4).double()
    post = diffusion.posterior_probs(x_t, p_x0, torch.tensor([20]), torch.tensor([0]))
    assert torch.allclose(post, p_x0)
    post = diffusion.posterior_probs(x_t, torch.full((1, 2, 4), 0.25, dtype=torch.float64), torch.tensor([20]), torch.tensor([7]))
    assert torch.allclose(post.sum(-1), torch.ones(1, 2, dtype=torch.float64))


def test_posterior_matches_bayes_rule_by_enumeration():
    diffusion = MarginalDiffusion(torch.tensor([4.0, 2.0, 1.0]), steps=20)
    t, s = torch.tensor([12]), torch.tensor([5])
    p_x0 = torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)
    qs, qts, qt = diffusion.transition(s)[0], diffusion.transition(t, s)[0], diffusion.transition(t)[0]
    for x_t_index in range(3):
        expected = torch.zeros(3, dtype=torch.float64)
        for x0 in range(3):  # q(x_s | x_t, x0) = q(x_t | x_s) q(x_s | x0) / q(x_t | x0)
            expected += p_x0[0, x0] * qts[:, x_t_index] * qs[x0] / qt[x0, x_t_index]
        x_t = torch.nn.functional.one_hot(torch.tensor([x_t_index]), 3).double()[None]
        got = diffusion.posterior_probs(x_t, p_x0[None], t, s)[0, 0]
        assert torch.allclose(got, expected / expected.sum(), atol=1e-12)


def small_model(**kwargs) -> MoleculeDiffusion:
    torch.manual_seed(0)
    args = dict(dataset="qm9", diffusion_steps=20, node_dim=32, edge_dim=8, layers=2, heads=2,
                qgfd=QGFDConfig(alpha=0.5, steps=2, transition="adjacency"), lr=3e-3, warmup_steps=1, ema_decay=0.5)
    args.update(kwargs)
    model = MoleculeDiffusion(**args)
    encoded = encode_smiles(qm9_smiles(300), QM9_VOCAB)
    atoms, bonds = encoded.atoms, encoded.bonds
    real = atoms >= 0
    atom_counts = torch.bincount(atoms[real], minlength=4).double()
    bond_counts = torch.bincount(bonds[real[:, :, None] & real[:, None, :]], minlength=4).double()
    model.set_statistics(atom_counts, bond_counts, torch.bincount(real.sum(1), minlength=10).double())
    return model, atoms, bonds


def test_optimisation_on_a_fixed_batch_lowers_the_loss():
    model, atoms, bonds = small_model()
    atoms, bonds = atoms[:64], bonds[:64]
    optimizer = model.configure_optimizers()["optimizer"]
    t = torch.randint(1, 21, (64,), generator=torch.Generator().manual_seed(0))

    def loss_now():
        torch.manual_seed(1)
        return model.diffusion_loss(atoms, bonds, t)[0]

    before = float(loss_now().detach())
    for _ in range(30):
        optimizer.zero_grad()
        loss_now().backward()
        optimizer.step()
    assert float(loss_now().detach()) < 0.7 * before


def test_alpha_zero_denoiser_is_the_plain_graph_transformer():
    model, atoms, bonds = small_model()
    plain, _, _ = small_model(qgfd=QGFDConfig(alpha=0.0, steps=2, transition="adjacency"))
    plain.load_state_dict(model.state_dict())
    atoms, bonds = atoms[200:204], bonds[200:204]  # molecules with several bonds (QM9 starts with CH4, NH3 ...)
    assert (bonds > 0).sum() > 20
    x = torch.nn.functional.one_hot(atoms.clamp(min=0), 4).float()
    e = torch.nn.functional.one_hot(bonds, 4).float()
    mask, t = atoms >= 0, torch.full((4,), 0.5)
    qgfd_out = model.denoiser(x, e, t, mask)[0]
    plain_out = plain.denoiser(x, e, t, mask)[0]
    assert (qgfd_out - plain_out).abs().max() > 1e-4  # QGFD changes the output ...
    for layer in plain.denoiser.layers:  # ... and alpha = 0 is exactly attention with edge biases
        assert layer.attention.alpha() == 0.0
    assert plain.denoiser(x, e, t, mask)[0].shape == (4, 9, 4)


@pytest.mark.parametrize("steps", [None, 5])
def test_sampling_returns_the_requested_molecules(steps):
    model, _, _ = small_model()
    samples = model.sample(7, steps=steps, seed=0, batch_size=4)
    assert len(samples.smiles) == len(samples.mols) == 7
    assert samples.network_evaluations == (20 if steps is None else 5)
    assert samples.qgfd_iterations == 2.0
    assert samples.atoms.shape == (7, 9)
    assert all((s is None) == (m is None) for s, m in zip(samples.smiles, samples.mols))
    again = model.sample(7, steps=steps, seed=0, batch_size=4)
    assert again.smiles == samples.smiles
    with pytest.raises(ValueError, match="steps=21"):
        model.sample(2, steps=21)


def test_smiles_file_with_bad_lines_is_skipped_and_counted(tmp_path, caplog):
    path = tmp_path / "mols.smi"
    path.write_text("CCO ethanol\nnonsense\nc1ccccc1\n\nC[N+](C)(C)C\nCC(=O)[O-]\nXx\n" + "CCN\n" * 20)
    data = SmilesDataModule(str(path), vocab="zinc", data_dir=str(tmp_path / "cache"), batch_size=4,
                            val_fraction=0.1, test_fraction=0.1)
    with caplog.at_level("WARNING"):
        data.setup()
    kept = sum(len(data.smiles(split)) for split in ("train", "val", "test"))
    assert kept == 24
    assert "skipped 2 unparsable and 0 outside the vocabulary" in caplog.text
    atoms, bonds = next(iter(data.train_dataloader()))
    assert atoms.shape[0] == 4 and bonds.shape[1:] == (atoms.shape[1], atoms.shape[1])
    # the cache makes a second module start without parsing anything
    again = SmilesDataModule(str(path), vocab="zinc", data_dir=str(tmp_path / "cache"))
    assert again.cache_path() == data.cache_path() and again.cache_path().exists()


def test_csv_column_and_split_file(tmp_path):
    path = tmp_path / "mols.csv"
    rows = ["smiles,logP"] + [f"{s},1.0" for s in ["CCO", "CCN", "CCC", "CCCl", "c1ccncc1", "OCCO"]]
    path.write_text("\n".join(rows) + "\n")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"valid_idxs": [0, 4]}))
    data = SmilesDataModule(str(path), column="smiles", data_dir=str(tmp_path / "cache"), split_file=str(split),
                            val_fraction=0.0)
    data.setup()
    assert data.smiles("test") == ["CCO", "c1ccncc1"]
    assert len(data.smiles("train")) == 4
    with pytest.raises(ValueError, match="no column 'smi'"):
        SmilesDataModule(str(path), column="smi", data_dir=str(tmp_path / "c2")).setup()


def test_zinc_offline_without_file_says_where_to_put_it(tmp_path):
    with pytest.raises(DataUnavailableError, match="250k_rndm_zinc_drugs_clean_3.csv") as error:
        ZINC250kDataModule(data_dir=str(tmp_path), download=False).setup()
    assert str(tmp_path) in str(error.value) and "b59078b2b04c6e9431280e3dc42048d5" in str(error.value)


def test_zinc_from_a_local_csv(tmp_path):
    path = tmp_path / "250k_rndm_zinc_drugs_clean_3.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["smiles", "logP", "qed", "SAS"])
        for smiles in ZINC_LIKE * 3:
            writer.writerow([smiles + "\n", 1.0, 0.5, 2.0])  # the real file's SMILES end in a newline
    data = ZINC250kDataModule(data_dir=str(tmp_path), download=False, val_fraction=0.1, test_fraction=0.1)
    data.setup()
    everything = set(data.smiles("train")) | set(data.smiles("val")) | set(data.smiles("test"))
    assert everything == {canonical_smiles(s) for s in ZINC_LIKE}


def test_qm9_split_file_uses_qm9_row_numbers(tmp_path):
    split = tmp_path / "valid_idx_qm9.json"
    split.write_text(json.dumps({"valid_idxs": ["0", "3"]}))  # QM9 #1 (CH4) and #4 (C#C)
    data = QM9DataModule(data_dir=str(tmp_path), split_file=str(split), max_molecules=500, val_fraction=0.01)
    data.setup()
    assert data.smiles("test") == ["C", "C#C"]
    assert 490 <= len(data.smiles("train")) <= 500  # 500 rows, less those outside the vocabulary


def test_lightning_fit_on_qm9_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "-c", str(CONFIGS / "qm9-cpu.yaml"), "--trainer.fast_dev_run", "2",
                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                 "--data.init_args.max_molecules", "300", "--data.init_args.batch_size", "16",
                 "--data.init_args.data_dir", str(tmp_path / "data")])
    assert code == 0
