"""Loading checkpoints: Lightning's own load_from_checkpoint, the recorded kind, refusing unsafe files, and
converting checkpoints written before format 2."""

import pytest
import torch

from models import ImageDiffusion, MoleculeDiffusion
from models.training.loading import load_datamodule, load_model
from sampling.commands.upgrade import main as upgrade_main
from qgfd_gen.checkpoints import RECORD_KEY
from qgfd_gen.errors import CheckpointError
from qgfd_gen.provenance import code_version
from pickle_cases import Marker

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["qgfd_gen.checkpoints", "qgfd_gen.provenance", "models.training.upgrade", "sampling.commands.upgrade"]


def test_lightning_loads_checkpoints_directly_and_they_record_their_kind(image_checkpoint, molecule_checkpoint):
    image = ImageDiffusion.load_from_checkpoint(image_checkpoint, weights_only=True)
    molecule = MoleculeDiffusion.load_from_checkpoint(molecule_checkpoint, weights_only=True)
    assert image.qgfd_config.iterations == 6 and molecule.hparams["network"]["node_dim"] == 32
    record = torch.load(image_checkpoint, weights_only=True)[RECORD_KEY]
    assert record == {"kind": "images", "format": 2, "datamodule": "datamodules.images.DigitsDataModule",
                      "code": code_version()}
    assert set(torch.load(image_checkpoint, weights_only=True)["qgfd_random_state"]) == {"cpu"}  # for a resume
    assert type(load_datamodule(molecule_checkpoint)).__name__ == "SmilesDataModule"
    with pytest.raises(CheckpointError, match="holds an image model, not a molecule model; use the `images` subcommand"):
        MoleculeDiffusion.load_from_checkpoint(image_checkpoint, weights_only=True)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_that_would_run_code_is_refused_before_anything_runs(tmp_path, image_checkpoint):
    marker = tmp_path / "ran"
    evil = torch.load(image_checkpoint, weights_only=True)
    evil["hyper_parameters"]["payload"] = _RunsCode(marker)
    path = tmp_path / "evil.ckpt"
    torch.save(evil, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_model(path, "images")
    assert not marker.exists()


def test_a_checkpoint_naming_a_foreign_data_module_is_refused(tmp_path, image_checkpoint):
    checkpoint = torch.load(image_checkpoint, weights_only=True)
    checkpoint[RECORD_KEY]["datamodule"] = "os.system"
    torch.save(checkpoint, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="outside this project's `datamodules` package"):
        load_datamodule(tmp_path / "foreign.ckpt")


def test_random_and_truncated_files_fail_plainly(tmp_path, image_checkpoint):
    torch.save({"weights": torch.ones(3)}, tmp_path / "plain.ckpt")
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        load_model(tmp_path / "plain.ckpt", "images")
    (tmp_path / "cut.ckpt").write_bytes(image_checkpoint.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model(tmp_path / "cut.ckpt", "images")


def _as_format_1(checkpoint: dict) -> dict:
    """The same model as the workbench wrote it before format 2: flat hyper-parameters, QGFD `steps`."""
    hp = checkpoint["hyper_parameters"]
    old_hp = {**hp["unet"], **hp["schedule"], **hp["optimizer"], "val_timesteps": hp["val_timesteps"],
              "val_seed": hp["val_seed"]}
    old_hp["qgfd"] = {("steps" if k == "iterations" else "eps" if k == "tol" else k): v for k, v in hp["qgfd"].items()}
    old = {k: v for k, v in checkpoint.items() if k != RECORD_KEY}
    old["hyper_parameters"] = old_hp
    old["qgfd_datamodule"] = {"class_path": checkpoint[RECORD_KEY]["datamodule"], "init_args": {}}
    return old


def test_an_old_checkpoint_is_explained_and_converts_to_the_same_model(tmp_path, image_checkpoint, capsys):
    old_path, new_path = tmp_path / "old.ckpt", tmp_path / "new.ckpt"
    torch.save(_as_format_1(torch.load(image_checkpoint, weights_only=True)), old_path)
    with pytest.raises(CheckpointError, match="qgfd-upgrade"):
        load_model(old_path, "images")
    assert upgrade_main([str(old_path), str(old_path)]) == 2  # never over the input
    assert upgrade_main([str(old_path), str(new_path)]) == 0
    converted, original = load_model(new_path, "images"), load_model(image_checkpoint, "images")
    assert torch.equal(converted.sample(3, steps=4, seed=1).images, original.sample(3, steps=4, seed=1).images)
    assert type(load_datamodule(new_path)).__name__ == "DigitsDataModule"


def test_qgfd_upgrade_given_a_pickle_runs_nothing_and_says_so(tmp_path, capsys):
    import pickle

    marker = tmp_path / "ran"
    (tmp_path / "old.ckpt").write_bytes(pickle.dumps({"state_dict": Marker(marker)}))
    assert upgrade_main([str(tmp_path / "old.ckpt"), str(tmp_path / "new.ckpt")]) == 2
    assert "is not a checkpoint qgfd-upgrade can read safely" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "new.ckpt").exists()
