"""Graphs beyond molecules end to end: `lightning fit` on a tiny planar config, `qgfd-sample graphs`, `qgfd-eval
graphs` (a sweep, and a file of graphs made elsewhere), and the refusal of bad graph files."""

import json

import networkx as nx
import numpy as np
import pytest
import torch

from conftest import CONFIGS
from datamodules.graph_files import read_graph_file, write_graph_npz
from models import GraphGeneration
from models.training.graph_generation import to_networkx
from qgfd_gen.errors import UsageError
from sampling.commands.evaluate import main as eval_main
from sampling.commands.lightning import main as lightning_main
from sampling.commands.sample import main as sample_main

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = [
    "datamodules.graph_files",
    "models.training.graph_chain",
    "models.training.callbacks",
    "sampling.evaluate_graphs",
]

TINY = ["--trainer.max_steps", "6", "--trainer.max_time", "null", "--trainer.check_val_every_n_epoch", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--model.init_args.max_nodes", "12", "--data.init_args.num_nodes", "12", "--model.init_args.num_train_timesteps", "50",
        "--model.init_args.network.node_dim", "16", "--model.init_args.network.edge_dim", "8",
        "--model.init_args.network.layers", "2", "--model.init_args.network.heads", "2",
        "--model.init_args.network.rrwp_steps", "4", "--model.init_args.val_samples", "4",
        "--model.init_args.val_sample_steps", "5"]


@pytest.mark.slow
def test_fit_sample_and_evaluate_a_tiny_planar_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert lightning_main(["fit", "-c", str(CONFIGS / "planar-cpu.yaml"), *TINY]) == 0
    ckpt = tmp_path / "runs/planar-cpu/checkpoints/last.ckpt"
    logged = (tmp_path / "runs/planar-cpu/logs/version_0/metrics.csv").read_text().splitlines()[0]
    assert all(f"val/{name}" in logged for name in ("vun", "valid", "degree_mmd", "orbit_mmd", "spectrum_mmd", "mean_ratio"))
    assert (tmp_path / "runs/planar-cpu/logs/version_0/samples/final.png").stat().st_size > 0  # the config's grid

    assert sample_main(["graphs", "--ckpt", str(ckpt), "--num", "6", "--steps", "5", "--out", "g.png", "--npz", "g.npz"]) == 0
    graphs = read_graph_file("g.npz")
    assert len(graphs) == 6 and all(g.number_of_nodes() <= 12 for g in graphs) and (tmp_path / "g.png").stat().st_size > 0
    assert "6 planar graphs" in capsys.readouterr().out

    assert eval_main(["graphs", "--ckpt", str(ckpt), "--num-samples", "6", "--steps", "5,50", "--out", "ev"]) == 0
    rows = json.loads((tmp_path / "ev/results.json").read_text())["rows"]
    assert [r["sampler_steps"] for r in rows] == [5, 50]
    assert all(0 <= r["vun"] <= r["valid"] <= 1 and r["degree_mmd"] >= 0 and r["samples"] == 6 for r in rows)
    # the same graphs from a file score the same as the sweep's row (same seed, same steps)
    assert eval_main(["graphs", "--samples", "g.npz", "--benchmark", "planar", "--graph-size", "12", "--json", "s.json"]) == 0
    scores = json.loads((tmp_path / "s.json").read_text())
    for name in ("vun", "valid", "unique", "novel", "connected", "planar", "degree_mmd", "clustering_mmd",
                 "orbit_mmd", "spectrum_mmd"):
        assert scores[name] == pytest.approx(rows[0][name]), name
    assert all(r["valid"] <= min(r["connected"], r["planar"]) for r in rows)  # valid is both halves at once
    # the sweep kept what it scored: those same graphs, and a grid of them
    assert [r["samples_file"] for r in rows] == ["samples/posterior-jump-fixed-5.npz", "samples/posterior-jump-fixed-50.npz"]
    kept = read_graph_file(tmp_path / "ev" / rows[0]["samples_file"])
    assert [sorted(g.edges()) for g in kept] == [sorted(g.edges()) for g in graphs]
    assert (tmp_path / "ev/samples/posterior-jump-fixed-50.png").stat().st_size > 0


def test_graph_model_returns_networkx_graphs_of_its_padded_samples():
    torch.manual_seed(0)
    model = GraphGeneration(benchmark="tree", max_nodes=8, num_train_timesteps=10,
                            network={"node_dim": 16, "edge_dim": 8, "layers": 1, "heads": 2})
    samples = model.sample(5, steps=3, seed=1, batch_size=2)
    assert len(samples.graphs) == 5 and samples.bonds.shape[1:] == (8, 8)
    again = model.sample(5, steps=3, seed=1, batch_size=5)  # graph i depends on (seed, i) only
    assert all(nx.utils.graphs_equal(a, b) for a, b in zip(samples.graphs, again.graphs))
    atoms = torch.tensor([[0, 0, 0, -1]])
    bonds = torch.tensor([[[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]])
    (path,) = to_networkx(atoms, bonds)
    assert sorted(path.edges()) == [(0, 1), (1, 2)] and path.number_of_nodes() == 3
    assert model.is_valid_graph(atoms, bonds).tolist() == [True]  # a path is a tree
    with pytest.raises(ValueError, match="benchmark='grid'; choose one of planar, tree"):
        GraphGeneration(benchmark="grid")
    with pytest.raises(ValueError, match=r"val_sample_steps=50; need an integer from 1 to 20"):
        GraphGeneration(num_train_timesteps=20, val_samples=4, val_sample_steps=50)  # refused before training
    with pytest.raises(ValueError, match="qgfd.transition='grid': QGFD diffuses over the edges; use 'adjacency'"):
        GraphGeneration(qgfd={"transition": "grid"})


def test_graph_files_in_every_layout(tmp_path):
    k4, path = nx.complete_graph(4), nx.path_graph(3)
    write_graph_npz([k4, path], tmp_path / "stacked.npz")
    np.savez(tmp_path / "listed.npz", nx.to_numpy_array(k4, dtype=np.uint8), nx.to_numpy_array(path, dtype=np.uint8))
    (tmp_path / "edges.txt").write_text("0 1\n0 2\n0 3\n1 2\n1 3\n2 3\n\nnodes 3\n0 1\n1 2\n")
    for name in ("stacked.npz", "listed.npz", "edges.txt"):
        read = read_graph_file(tmp_path / name)
        assert [nx.is_isomorphic(a, b) for a, b in zip(read, [k4, path])] == [True, True], name
        assert [g.number_of_nodes() for g in read] == [4, 3], name


@pytest.mark.parametrize("content, message", [
    (np.ones((2, 3), dtype=np.uint8), "is not a square adjacency matrix"),
    (np.array([[0, 1], [0, 0]], dtype=np.uint8), "is not symmetric"),
    (np.array([[0, 2], [2, 0]]), "holds the value 2; an adjacency matrix is 0 / 1"),
    (np.array([[1, 0], [0, 0]]), "has self-loops"),
])
def test_bad_graph_files_are_refused_before_scoring(tmp_path, capsys, content, message):
    np.savez(tmp_path / "bad.npz", content)
    assert eval_main(["graphs", "--samples", str(tmp_path / "bad.npz"), "--benchmark", "planar",
                      "--json", str(tmp_path / "s.json")]) == 2
    error = capsys.readouterr().err
    assert message in error and "bad.npz" in error and not (tmp_path / "s.json").exists()


def test_empty_or_unreadable_graph_files_and_bad_options_are_refused(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(UsageError, match="holds no graphs"):
        read_graph_file(tmp_path / "empty.txt")
    (tmp_path / "words.txt").write_text("0 1\nzero two\n")
    with pytest.raises(UsageError, match="line 'zero two' is not an edge"):
        read_graph_file(tmp_path / "words.txt")
    (tmp_path / "loop.txt").write_text("3 3\n")
    with pytest.raises(UsageError, match="self-loop"):
        read_graph_file(tmp_path / "loop.txt")
    with pytest.raises(UsageError, match="does not exist"):
        read_graph_file(tmp_path / "absent.npz")
    np.savez(tmp_path / "padded.npz", adjacency=np.ones((1, 3, 3), dtype=np.uint8) - np.eye(3, dtype=np.uint8),
             num_nodes=np.array([2]))
    with pytest.raises(UsageError, match="has edges beyond its num_nodes"):
        read_graph_file(tmp_path / "padded.npz")
    assert eval_main(["graphs", "--samples", str(tmp_path / "padded.npz"), "--json", str(tmp_path / "x.json")]) == 2
    assert eval_main(["graphs", "--samples", str(tmp_path / "padded.npz"), "--benchmark", "grid",
                      "--json", str(tmp_path / "x.json")]) == 2


def test_a_grid_callback_with_steps_beyond_the_chain_is_refused_before_training(tmp_path):
    import lightning as L

    from datamodules import SyntheticGraphDataModule
    from models import SampleGridCallback

    model = GraphGeneration(max_nodes=12, num_train_timesteps=20, network={"node_dim": 8, "edge_dim": 4, "layers": 1, "heads": 2})
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path),
                        callbacks=[SampleGridCallback(num=4, steps=500)])
    with pytest.raises(ValueError, match=r"SampleGridCallback: steps=500; need an integer from 1 to 20"):
        trainer.fit(model, SyntheticGraphDataModule(num_nodes=12))
    assert trainer.global_step == 0
