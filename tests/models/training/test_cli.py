"""The `lightning` command: every config builds, training runs and resumes, data missing offline stops it plainly.
The runs through `lightning fit` are marked slow; the README's test command runs them too."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CONFIGS
from datamodules import DataUnavailableError, ImageFolderDataModule
from models import GraphGeneration, ImageDiffusion, MoleculeDiffusion, SampleQualityCallback
from sampling.commands.lightning import main
from models.training.cli import run_cli

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["sampling.commands.lightning"]

IMAGE_CONFIGS = ["digits", "cifar", "cifar-vanilla", "cifar-cpu", "celeba"]
MOLECULE_CONFIGS = ["qm9-cpu", "qm9", "zinc"]
GRAPH_CONFIGS = ["planar-cpu", "tree-cpu", "planar", "tree"]


@pytest.mark.parametrize("name", IMAGE_CONFIGS + MOLECULE_CONFIGS + GRAPH_CONFIGS)
def test_config_parses_and_builds(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = run_cli(["-c", str(CONFIGS / f"{name}.yaml")], run=False)
    if name in GRAPH_CONFIGS:
        assert isinstance(cli.model, GraphGeneration) and cli.model.benchmark == name.split("-")[0]
        assert cli.datamodule.kind == cli.model.benchmark and cli.datamodule.num_nodes == cli.model.hparams.max_nodes
        return
    if name in MOLECULE_CONFIGS:
        assert isinstance(cli.model, MoleculeDiffusion) and cli.model.hparams["qgfd"]["transition"] == "adjacency"
        return
    assert isinstance(cli.model, ImageDiffusion)
    quality = [c for c in cli.trainer.callbacks if isinstance(c, SampleQualityCallback)]
    assert len(quality) == (name != "digits")  # FID / KID while training, on the Inception (digits: its classifier)
    assert all(q.every_n_train_steps and q.feature_extractor is None for q in quality)
    assert cli.model.unet_config.attention == ("vanilla" if name == "cifar-vanilla" else "qgfd")
    if name.startswith("cifar") and name != "cifar-cpu":
        params = sum(p.numel() for p in cli.model.unet.parameters())
        assert abs(params - 35.7e6) < 0.1e6, params


def _fit(tmp_path, config, *extra):
    return main(["fit", "-c", str(CONFIGS / config), "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false", *extra])


@pytest.mark.slow
def test_lightning_fit_fast_dev_run_on_digits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _fit(tmp_path, "digits.yaml", "--trainer.fast_dev_run", "2") == 0


@pytest.mark.slow
def test_lightning_fit_on_image_folder_and_resume(tmp_path, monkeypatch):
    """Flat folder of PNGs -> 2 steps -> checkpoint; resume with --ckpt_path last continues to step 4."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    ckpt_dir = tmp_path / "ckpts"
    callbacks = json.dumps([{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                             "init_args": {"dirpath": str(ckpt_dir), "save_last": True}}])
    common = ["--data.init_args.data_dir", str(folder), "--data.init_args.batch_size", "4",
              "--data.init_args.num_workers", "0", "--data.init_args.val_size", "4",
              "--trainer.callbacks", callbacks, "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1",
              "--trainer.limit_train_batches", "2", "--trainer.val_check_interval", "null"]
    assert _fit(tmp_path, "cifar-cpu.yaml", *common, "--trainer.max_steps", "2") == 0
    first = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert first["global_step"] == 2
    assert _fit(tmp_path, "cifar-cpu.yaml", *common, "--trainer.max_steps", "4", "--trainer.max_epochs", "2",
                "--ckpt_path", "last") == 0
    second = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert second["global_step"] == 4
    assert second["epoch"] == 1
    assert int(second["state_dict"]["ema.n_averaged"]) == 4  # the EMA continued too
    assert "optimizer_states" in second and second["optimizer_states"][0]["state"]
    from models.training.loading import load_datamodule, load_model

    rebuilt = load_datamodule(ckpt_dir / "last.ckpt")  # what samplers and evaluators use to find the data again
    assert isinstance(rebuilt, ImageFolderDataModule) and str(rebuilt.data_dir) == str(folder)
    model = ImageDiffusion.load_from_checkpoint(ckpt_dir / "last.ckpt", weights_only=True)  # Lightning's own loading
    assert model.unet_config.sample_size == 32 and torch.equal(model.unet.conv_in.weight, load_model(
        ckpt_dir / "last.ckpt", "images").unet.conv_in.weight)
    from sampling.commands.sample import main as sample_main

    assert sample_main(["images", "--ckpt", str(ckpt_dir / "last.ckpt"), "--num", "2", "--steps", "2",
                        "--out", str(tmp_path / "grid.png")]) == 0  # a checkpoint written by the CLI samples


@pytest.mark.slow
def test_lightning_fit_on_qm9(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "-c", str(CONFIGS / "qm9-cpu.yaml"), "--trainer.fast_dev_run", "2",
                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                 "--data.init_args.max_molecules", "300", "--data.init_args.batch_size", "16",
                 "--data.init_args.data_dir", str(tmp_path / "data")])
    assert code == 0


def test_missing_data_stops_the_command_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "-c", str(CONFIGS / "cifar.yaml"), "--data.init_args.download", "false",
                 "--data.init_args.data_dir", str(tmp_path / "nowhere"), "--trainer.accelerator", "cpu",
                 "--trainer.devices", "1", "--trainer.enable_model_summary", "false"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz" in err and "nowhere" in err
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("argv, message", [
    (["--model.init_args.qgfd.alpha", "1.5"], "invalid configuration: alpha=1.5 is outside [0, 1)"),
    (["--model.init_args.unet.attention", "flash"], "attention='flash'; choose one of vanilla, qgfd"),
    (["--model.init_args.qgfd.steps", "3"], "Option 'steps' is not accepted (at model.qgfd)"),
    (["--trainer.max_steps", "abc"], "Got value: abc (at trainer.max_steps)"),
    (["--data.init_args.batch_size", "0"], "batch_size=0; need an integer >= 1"),
    (["--trainer.max_steps", "-5"], "`max_steps` must be a non-negative integer or -1"),
    (["--ckpt_path", "last", "--model.init_args.qgfd.alpha", "0.3"],
     "--ckpt_path resumes the checkpoint's own model, so --model.init_args.qgfd.alpha would be ignored"),
])
def test_config_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "-c", str(CONFIGS / "digits.yaml"), "--trainer.fast_dev_run", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_ckpt_path_is_checked_before_training(tmp_path, monkeypatch, capsys, molecule_checkpoint):
    monkeypatch.chdir(tmp_path)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(molecule_checkpoint.read_bytes()[:3000])
    for path, message in ((tmp_path / "missing.ckpt", "does not exist"), (cut, "not a readable checkpoint"),
                          (molecule_checkpoint, "holds a molecule model, not an image model; train it with a config of a molecule model")):
        assert main(["fit", "-c", str(CONFIGS / "digits.yaml"), "--trainer.fast_dev_run", "1",
                     "--ckpt_path", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_a_corrupt_image_is_named_at_setup_or_skipped(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (12, 12), (i * 40, 10, 10)).save(folder / f"{i}.png")
    (folder / "3.png").write_bytes((folder / "3.png").read_bytes()[:40])
    with pytest.raises(DataUnavailableError, match="3.png' is corrupt"):
        ImageFolderDataModule(str(folder), image_size=8, val_size=1, num_workers=0).setup()
    data = ImageFolderDataModule(str(folder), image_size=8, val_size=1, num_workers=0, skip_corrupt=True)
    data.setup()
    assert len(data.train_set) + len(data.val_set) == 5


@pytest.mark.slow
def test_lightning_test_reports_test_loss_and_nll_for_images(tmp_path, monkeypatch, image_checkpoint):
    monkeypatch.chdir(tmp_path)
    assert main(["test", "-c", str(CONFIGS / "digits.yaml"), "--ckpt_path", str(image_checkpoint),
                 "--data.init_args.image_size", "8", "--data.init_args.data_dir", str(tmp_path),
                 "--trainer.limit_test_batches", "1", "--trainer.enable_progress_bar", "false"]) == 0
    metrics = next((tmp_path / "runs" / "digits" / "logs").glob("version_*/metrics.csv")).read_text()
    header, values = metrics.splitlines()[:2]
    row = dict(zip(header.split(","), values.split(",")))
    assert float(row["test/loss"]) > 0 and 0 < float(row["test/nll_bpd"]) < 64  # 8 bits a pixel is the ceiling... of sense


@pytest.mark.slow
def test_lightning_test_scores_generated_molecules_against_the_splits(tmp_path, qm9_smiles):
    import lightning as L

    from conftest import make_molecule_model
    from datamodules import SmilesDataModule

    smiles = tmp_path / "train.smi"
    smiles.write_text("\n".join(qm9_smiles(300)) + "\n")
    model = make_molecule_model()
    model.hparams.test_samples, model.hparams.val_sample_steps = 16, 10
    data = SmilesDataModule(str(smiles), vocab="qm9", data_dir=str(tmp_path / "cache"), batch_size=32)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_test_batches=1)
    result = trainer.test(model, data, verbose=False)[0]
    assert result["test/loss"] > 0
    assert 0 <= result["test/validity"] <= 1 and 0 <= result["test/novelty"] <= 1 and "test/uniqueness" in result
