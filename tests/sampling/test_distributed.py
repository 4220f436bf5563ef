"""Sampling and evaluation split over two CPU processes (DDP, gloo) give what one process gives: the same
images and SMILES, the same metrics. The merge of uneven shares is checked without processes too."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.training.image_diffusion import SampleResult
from sampling.distributed import Shard, launch, merge_shares
from sampling.commands.evaluate import main as eval_main
from sampling.commands.sample import main as sample_main
from qgfd_gen.errors import UsageError
from extractor_cases import TinyExtractor
from conftest import ROOT_DIR

ROOT = ROOT_DIR


def run(module: str, *argv: str, cwd: Path) -> None:
    """One process: the command called here; two: a fresh interpreter (DDP spawns from it, as from a shell)."""
    if argv[-1] == "1":
        main = {"sampling.commands.sample": sample_main, "sampling.commands.evaluate": eval_main}[module]
        assert main(list(argv)) == 0
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", module, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_process_gets_whole_batches_in_turn():
    assert Shard(0, 2).batches(10, 3) == [0, 6] and Shard(1, 2).batches(10, 3) == [3, 9]
    assert Shard(1, 2).share(10, 3) == 4 and Shard().batches(10, 3) is None and Shard().share(10, 3) == 10
    with pytest.raises(UsageError, match="make 2 batch"):
        launch(lambda shard, args: None, None, devices=3, num_nodes=1, device="cpu", num=10, batch_size=5)


def test_uneven_shares_merge_back_into_index_order():
    def share(indices):
        index = torch.tensor(indices, dtype=torch.float32)
        return SampleResult(evaluations=index + 10, rejected=torch.zeros(len(indices)),
                            qgfd_iterations=2.0 if indices[0] == 0 else 4.0, seconds=1.0, images=index.view(-1, 1, 1, 1))

    # 10 samples in batches of 3: rank 0 holds batches at 0 and 6, rank 1 at 3 and 9
    merged = merge_shares([share([0, 1, 2, 6, 7, 8]), share([3, 4, 5, 9])], batch_size=3, seconds=7.0)
    assert merged.images.flatten().tolist() == list(range(10))
    assert merged.network_evaluations == pytest.approx(14.5) and merged.evaluations_max == 19
    assert merged.qgfd_iterations == pytest.approx((2 * 6 + 4 * 4) / 10) and merged.seconds == 7.0


@pytest.mark.slow
def test_two_processes_sample_the_same_images_and_molecules(image_checkpoint, molecule_checkpoint, tmp_path):
    for devices in ("1", "2"):  # ddpm: a stochastic sampler, its noise seeded per batch
        run("sampling.commands.sample", "images", "--ckpt", str(image_checkpoint), "--num", "10", "--batch-size", "3",
            "--sampler", "ddpm", "--steps", "5", "--out", str(tmp_path / f"grid{devices}.png"), "--npz", str(tmp_path / f"images{devices}.npz"),
            "--devices", devices, cwd=tmp_path)
        run("sampling.commands.sample", "molecules", "--ckpt", str(molecule_checkpoint), "--num", "10", "--batch-size", "4",
            "--steps", "5", "--out", str(tmp_path / f"mols{devices}.png"), "--smiles", str(tmp_path / f"mols{devices}.smi"),
            "--devices", devices,
            cwd=tmp_path)
    one, two = (np.load(tmp_path / f"images{d}.npz") for d in ("1", "2"))
    assert np.array_equal(one[one.files[0]], two[two.files[0]])
    assert (tmp_path / "mols1.smi").read_text() == (tmp_path / "mols2.smi").read_text()
    assert (tmp_path / "grid2.png").exists() and (tmp_path / "mols2.png").exists()


@pytest.mark.slow
def test_two_processes_evaluate_to_the_same_rows(image_checkpoint, molecule_checkpoint, tmp_path):
    extractor = tmp_path / "extractor.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    rows = {}
    for devices in ("1", "2"):
        run("sampling.commands.evaluate", "images", "--ckpt", str(image_checkpoint), "--num-samples", "12", "--batch-size", "4",
            "--steps", "3,5", "--exit-tol", "2", "--metrics", "fid,is", "--feature-extractor", str(extractor),
            "--out", str(tmp_path / f"images{devices}"), "--devices", devices, cwd=tmp_path)
        run("sampling.commands.evaluate", "molecules", "--ckpt", str(molecule_checkpoint), "--num-samples", "12",
            "--batch-size", "4", "--steps", "5", "--out", str(tmp_path / f"mols{devices}"), "--devices", devices,
            cwd=tmp_path)
        rows[devices] = [json.loads((tmp_path / f"{kind}{devices}" / "results.json").read_text())["rows"]
                         for kind in ("images", "mols")]
    measured = ("fid", "is", "network_evaluations", "evaluations_min", "evaluations_max", "validity", "uniqueness",
                "novelty", "fcd", "connected", "largest_fragment_validity", "nspdk_mmd")
    for one, two in zip(rows["1"], rows["2"]):
        assert len(one) == len(two) > 0
        for a, b in zip(one, two):
            for key in measured:
                if a.get(key) is None:
                    assert b.get(key) is None, key
                else:
                    assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key
    assert {"fid", "is"} <= set(rows["2"][0][0]) and "validity" in rows["2"][1][0]


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 8, 8), (1, 5, 3)])
def test_image_noise_drawn_a_batch_at_a_time_is_the_one_stream(shape):
    """The per-batch draw gives the numbers one draw of all samples gives (so images match earlier releases),
    also for sizes that are no multiple of 16 (those draw the stream at once)."""
    from models.training.image_diffusion import initial_noise

    whole = torch.randn((10, *shape), generator=torch.Generator().manual_seed(7))
    parts = list(initial_noise(7, 10, 4, shape))
    assert [lo for lo, _ in parts] == [0, 4, 8]
    assert torch.equal(torch.cat([noise for _, noise in parts]), whole)


def test_a_wrong_checkpoint_is_refused_before_any_process_starts(molecule_checkpoint, tmp_path, capsys):
    assert sample_main(["images", "--ckpt", str(molecule_checkpoint), "--devices", "2",
                        "--out", str(tmp_path / "grid.png")]) == 2
    assert "molecule" in capsys.readouterr().err and not (tmp_path / "grid.png").exists()
