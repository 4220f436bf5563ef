"""qgfd-bench at tiny sizes: the operator suite writes its JSON, the U-Net suite compares on equal weights."""

import json
from pathlib import Path

import pytest
import torch

from conftest import CONFIGS, TINY_UNET
from models import UNetConfig
from sampling.commands.bench import main as bench_main
from sampling.benchmarks.gpu import GPU_CONFIGS
from sampling.benchmarks.unet import unet_ratios, unet_suite

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = [
    "sampling.benchmarks.gpu",
    "sampling.benchmarks.gpu_inputs",
    "sampling.benchmarks.molecules",
    "sampling.benchmarks.operator",
    "sampling.benchmarks.request",
    "sampling.benchmarks.sampler",
    "sampling.benchmarks.structure",
    "sampling.benchmarks.timing",
    "sampling.benchmarks.unet",
    "sampling.commands.bench",
]


def test_operator_suite_writes_rows_with_ratios(tmp_path):
    out = tmp_path / "bench.json"
    assert bench_main(["--sizes", "16", "--modes", "grid,knn,adjacency", "--repeats", "1", "--iterations", "2",
                       "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [r["mode"] for r in rows] == ["grid", "knn", "adjacency"]
    assert all(r["ratio_forward_backward_vs_sdpa"] > 0 and r["iterations"] == 2 for r in rows)
    assert data["meta"]["ratios"]["adjacency_fwd_bwd_vs_sdpa_16"] == rows[2]["ratio_forward_backward_vs_sdpa"]
    assert len(data["meta"]["ratios"]) == 6
    assert rows[2]["qgfd_peak_mb"] > 0  # the sparse product's CSR tensors are counted through their parts


def test_molecule_suite_times_both_alphas_and_reports_ratios():
    from models import GraphTransformerConfig
    from sampling.benchmarks.molecules import molecule_ratios, molecule_suite

    rows = molecule_suite(["qm9"], batch=4, num=2, steps=2, repeats=1, progress=lambda text: None,
                          network=GraphTransformerConfig(node_dim=16, edge_dim=8, layers=1, heads=2))
    assert [r["alpha"] for r in rows] == [0.0, 0.5]
    assert all(r["train_step_ms"] > 0 and r["molecules_per_second"] > 0 for r in rows)
    assert set(molecule_ratios(rows)) == {"molecule_step_qgfd_vs_vanilla_qm9", "molecule_sampling_qgfd_vs_vanilla_qm9"}


def test_unet_suite_on_a_tiny_unet():
    rows = unet_suite(batch=2, repeats=1, progress=lambda text: None, unet=UNetConfig(**TINY_UNET))
    assert [r["attention"] for r in rows] == ["vanilla", "qgfd"]
    assert rows[0]["train_step_ratio_vs_vanilla"] == 1.0 and rows[1]["train_step_ms"] > 0
    ratios = unet_ratios(rows)
    assert ratios["unet_step_qgfd_vs_vanilla"] == rows[1]["train_step_ratio_vs_vanilla"] > 0


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "16,x"], "'16,x'"), (["--modes", "grid,ring"], "'grid,ring': choose from"),
    (["--dim", "0"], "'0': need a positive integer"), (["--alpha", "1"], "QGFD's alpha must be in [0, 1)"),
    (["--repeats", "-1"], "'-1': need a positive integer"),
])
def test_bad_arguments_exit_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        bench_main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_an_unwritable_output_is_refused_before_measuring(tmp_path, capsys):
    assert bench_main(["--sizes", "16", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_sampler_suite_against_diffusers_on_a_tiny_unet(tmp_path):
    import json

    from sampling.commands.bench import main as bench_main

    out = tmp_path / "sampler.json"
    assert bench_main(["sampler", "--num-images", "2", "--sample-steps", "3", "--repeats", "1",
                       "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["meta"]["ratios"]) == {"sampler_vs_diffusers_ddim", "sampler_vs_diffusers_dpm++"}
    assert all(value > 0 for value in data["meta"]["ratios"].values())
    assert [r["sampler"] for r in data["rows"]] == ["ddim", "dpm++", "adaptive"]
    assert all(r["max_image_difference"] < 1e-5 for r in data["rows"][:2])  # the same work on both sides


def test_gpu_suite_tiny_runs_every_part_on_the_cpu(tmp_path, capsys):
    import gzip

    import numpy as np

    np.savez(tmp_path / "reference.npz", np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8))
    data_dir = tmp_path / "data"  # QM9 comes from qm9pack (cached here), MOSES from a small copy of its files
    (data_dir / "moses").mkdir(parents=True)
    smiles = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccccc1", "CCN(CC)CC", "O=C(O)c1ccccc1", "CC1CCCCC1", "Cc1ccncc1", "CCOC(C)=O"]
    for name, rows in (("train.csv.gz", smiles * 5), ("test.csv.gz", smiles)):
        with gzip.open(data_dir / "moses" / name, "wt") as handle:
            handle.write("SMILES,SPLIT\n" + "".join(f"{s},x\n" for s in rows))
    out = tmp_path / "gpu.json"
    assert bench_main(["gpu", "--tiny", "--reference", str(tmp_path / "reference.npz"), "--out", str(out),
                       "--data-dir", str(data_dir)]) == 0
    data = json.loads(out.read_text())
    train = [r for r in data["rows"] if r["part"] == "train"]
    assert [(r["config"], r["arm"]) for r in train] == [(c, a) for c in GPU_CONFIGS for a in ("qgfd", "vanilla")]
    assert all(r["steps_done"] == 3 and r["losses_finite"] and r["peak_memory_mb"] > 0 and not r["cut_short"]
               and r["precision"] == "bf16-mixed" for r in train)  # autocast, as on a GPU
    assert set(data["meta"]["ratios"]) == {f"{c}_qgfd_vs_vanilla_step" for c in GPU_CONFIGS}
    inputs = {r["config"]: r["inputs"] for r in train}
    assert inputs["qm9"].startswith("data set: QM9DataModule") and inputs["moses"].startswith("data set: MOSESDataModule")
    assert inputs["planar"].startswith("data set: SyntheticGraphDataModule")  # made at setup, never absent
    for absent, named in (("cifar", "cifar-10-batches-py"), ("celeba", "CelebA"), ("zinc", "250k_rndm_zinc")):
        assert inputs[absent].startswith("random tensors") and named in inputs[absent]  # the reason, not a download
    assert data["meta"]["tiny"] and "random tensors" in data["meta"]["inputs"]
    sample = next(r for r in data["rows"] if r["part"] == "sample")
    fid = next(r for r in data["rows"] if r["part"] == "fid")
    assert sample["images_done"] == 8 and sample["images_per_second"] > 0
    assert fid["fid_label"] == "FID@8" and fid["fid"] > 0 and fid["reference_images"] == 12
    assert "cifar_qgfd_vs_vanilla_step" in capsys.readouterr().out


def test_gpu_suite_cuts_a_part_over_its_budget_and_needs_a_gpu_without_tiny(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert bench_main(["gpu", "--tiny", "--configs", "qm9", "--train-steps", "50", "--part-budget", "0.01",
                       "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert all(r["cut_short"] and r["steps_done"] < 50 for r in rows)
    if not torch.cuda.is_available():
        assert bench_main(["gpu", "--out", str(tmp_path / "x.json")]) == 2
        assert "needs a CUDA device and this machine has none; --tiny" in capsys.readouterr().err
        assert not (tmp_path / "x.json").exists()


def test_gpu_suite_trains_images_on_the_data_set_where_it_is(tmp_path):
    import numpy as np
    from PIL import Image

    from sampling.benchmarks.gpu import build_model, load_config, training_inputs

    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    config = load_config("cifar-cpu")  # an image-folder config: data_dir is the folder itself
    model = build_model(config, "qgfd", tiny=True)
    fit_inputs, inputs, _ = training_inputs(config, model, 2, 3, True, str(tmp_path))
    assert inputs == f"data set: ImageFolderDataModule from {str(tmp_path)!r}"
    batch = next(iter(fit_inputs["datamodule"].train_dataloader()))
    images = batch[0] if isinstance(batch, (list, tuple)) else batch
    size = model.unet_config.sample_size
    assert images.shape == (2, 3, size, size) and images.min() >= -1 and images.max() <= 1  # resized to the tiny model
    fit_inputs, inputs, _ = training_inputs(config, model, 2, 3, True, str(tmp_path / "absent"))
    assert inputs.startswith("random tensors") and "absent" in inputs and "train_dataloaders" in fit_inputs


def test_structure_suite_times_every_study_arm_against_vanilla():
    from models import GraphTransformerConfig
    from sampling.benchmarks.structure import STRUCTURE_ARMS, structure_ratios, structure_suite

    rows = structure_suite(batch=2, repeats=1, progress=lambda text: None,
                           network=GraphTransformerConfig(node_dim=16, edge_dim=8, layers=1, heads=2))
    assert [r["arm"] for r in rows] == list(STRUCTURE_ARMS)
    assert all(r["train_step_ms"] > 0 for r in rows) and rows[0]["step_ratio_vs_vanilla"] == 1.0
    assert set(structure_ratios(rows)) == {f"structure_step_{arm}_vs_vanilla" for arm in list(STRUCTURE_ARMS)[1:]}


def test_structure_suite_times_a_graph_studys_arms_on_its_own_data(tmp_path, monkeypatch, capsys):
    import yaml

    monkeypatch.chdir(tmp_path)
    base = yaml.safe_load((CONFIGS / "planar-cpu.yaml").read_text())
    base["model"]["init_args"].update(max_nodes=12, num_train_timesteps=20, val_sample_steps=5,
                                      network={"node_dim": 16, "edge_dim": 8, "layers": 1, "heads": 2})
    base["data"]["init_args"].update(num_nodes=12, batch_size=4)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    study = {"name": "tiny-planar", "base": "base.yaml", "seeds": [0], "budget": {"steps": 2}, "baseline": "plain",
             "arms": {"plain": {"model.init_args.qgfd.alpha": 0.0},
                      "rrwp": {"model.init_args.qgfd.alpha": 0.0, "model.init_args.network.rrwp_steps": 4}},
             "evaluate": {"num_samples": 4, "steps": [5]}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    assert bench_main(["structure", "--study", "study.yaml", "--repeats", "1", "--out", "s.json"]) == 0
    data = json.loads((tmp_path / "s.json").read_text())
    assert [(r["arm"], r["batch"], r["study"]) for r in data["rows"]] == [("plain", 4, "tiny-planar"), ("rrwp", 4, "tiny-planar")]
    assert data["rows"][0]["step_ratio_vs_vanilla"] == 1.0 and data["rows"][1]["train_step_ms"] > 0
    assert list(data["meta"]["ratios"]) == ["structure_step_rrwp_vs_plain"]
    from sampling.studies.cost import read_clean_cost
    from sampling.studies.plan import read_study

    (tmp_path / "out").mkdir()  # the study's folder: its report judges the cost on this file
    (tmp_path / "out" / "cost.json").write_text((tmp_path / "s.json").read_text())
    cost = read_clean_cost(tmp_path / "out", read_study("study.yaml"))
    assert cost.step_ms == {r["arm"]: r["train_step_ms"] for r in data["rows"]} and cost.batch == 4
    assert cost.ratio("rrwp", "plain") == data["rows"][1]["step_ratio_vs_vanilla"]
    image_study = dict(study, base=str(CONFIGS / "digits.yaml"),
                       arms={"a": {}, "b": {"seed_everything": 1}}, baseline="a")
    (tmp_path / "images.yaml").write_text(yaml.safe_dump(image_study))
    capsys.readouterr()
    assert bench_main(["structure", "--study", "images.yaml", "--repeats", "1", "--out", "i.json"]) == 0
    timed = json.loads((tmp_path / "i.json").read_text())["rows"]  # an image study's arms time the same way
    assert [r["arm"] for r in timed] == ["a", "b"] and timed[0]["step_ratio_vs_vanilla"] == 1.0
    with pytest.raises(SystemExit):  # the unet suite has no --study: argparse refuses it, naming it
        bench_main(["unet", "--study", "study.yaml", "--out", "u.json"])
    assert "unrecognized arguments: --study" in capsys.readouterr().err
    assert not (tmp_path / "u.json").exists()
