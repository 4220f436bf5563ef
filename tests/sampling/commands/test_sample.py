"""qgfd-sample: image grids and files, molecule grids and SMILES, and plain errors for wrong files."""

import numpy as np
from PIL import Image

from sampling.commands.sample import main as sample_main

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["sampling.kept_samples", "sampling.progress", "sampling.sample_files"]


def test_sample_images_command(image_checkpoint, tmp_path):
    out, npz, folder = tmp_path / "new" / "grid.png", tmp_path / "s.npz", tmp_path / "each"  # folders made on write
    assert sample_main(["images", "--ckpt", str(image_checkpoint), "--num-samples", "6", "--steps", "4", "--seed", "1",
                        "--out", str(out), "--npz", str(npz), "--images-dir", str(folder)]) == 0
    assert Image.open(out).size[0] > 8
    assert np.load(npz)["arr_0"].shape == (6, 8, 8, 1)
    assert len(list(folder.glob("*.png"))) == 6
    assert not list(tmp_path.glob(".*.tmp*"))  # no temporary files left behind


def test_a_second_run_into_a_full_images_dir_is_refused_and_removes_nothing(image_checkpoint, tmp_path, capsys):
    """Issue 40: a second run with fewer images left the first run's extra images beside its own."""
    folder = tmp_path / "each"
    argv = ["images", "--ckpt", str(image_checkpoint), "--steps", "2", "--images-dir", str(folder)]
    assert sample_main([*argv, "--num", "4", "--out", str(tmp_path / "a.png")]) == 0
    before = sorted(p.name for p in folder.iterdir())
    assert sample_main([*argv, "--num", "2", "--out", str(tmp_path / "b.png")]) == 2
    assert "already holds 4 entries; give a new or empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == before and not (tmp_path / "b.png").exists()


def test_sample_molecules_command(molecule_checkpoint, tmp_path):
    grid, smi = tmp_path / "mols.png", tmp_path / "mols.smi"
    assert sample_main(["molecules", "--ckpt", str(molecule_checkpoint), "--num", "12", "--steps", "5",
                        "--out", str(grid), "--smiles", str(smi)]) == 0
    assert len(smi.read_text().split("\n")) == 13  # 12 lines, each ended by a newline
    assert Image.open(grid).size[0] > 100


def test_wrong_files_fail_plainly(image_checkpoint, tmp_path, capsys):
    assert sample_main(["images", "--ckpt", str(tmp_path / "missing.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sample_main(["molecules", "--ckpt", str(image_checkpoint), "--out", str(tmp_path / "x.png")]) == 2
    assert "use the `images` subcommand" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
