"""One writer per output folder: a second run on a folder in use is refused at once, naming the holder; a lock
left by a killed run blocks nothing; settings are refused before any folder or progress bar appears."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qgfd_gen.errors import UsageError
from qgfd_gen.locks import LOCK_NAME, folder_lock
from sampling.commands.evaluate import main as eval_main
from sampling.commands.sample import main as sample_main
from conftest import ROOT_DIR

ROOT = ROOT_DIR
HOLD = "import sys, time; from qgfd_gen.locks import folder_lock\nwith folder_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(60)"


def _wait_for(path: Path, child: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert child.poll() is None, f"the first run ended ({child.returncode}) before taking its lock"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_held_folder_is_refused_naming_the_holder_and_a_killed_holder_blocks_nothing(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "out")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match=rf"'{tmp_path / 'out'}' is in use by another run \(process {child.pid}\)"):
            with folder_lock(tmp_path / "out"):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert (tmp_path / "out" / LOCK_NAME).exists()  # the killed run's file stays, its lock does not
    with folder_lock(tmp_path / "out") as folder:
        assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (tmp_path / "out" / LOCK_NAME).exists()  # a finished run leaves no lock file


def test_two_evaluations_on_one_folder_the_second_refused_the_first_whole(image_checkpoint, tmp_path, capsys):
    out = tmp_path / "sweep"
    steps = ",".join(str(s) for s in range(2, 42, 4))
    first = subprocess.Popen([sys.executable, "-m", "sampling.commands.evaluate", "images", "--ckpt",
                              str(image_checkpoint), "--num-samples", "64", "--steps", steps, "--metrics", "nll",
                              "--nll-images", "4", "--nll-timesteps", "2", "--out", str(out)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(out / LOCK_NAME, first)
    second = eval_main(["images", "--ckpt", str(image_checkpoint), "--num-samples", "64", "--steps", steps,
                        "--metrics", "nll", "--nll-images", "4", "--nll-timesteps", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second == 2 and f"is in use by another run (process {first.pid})" in err
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["sampler_steps"] for r in rows] == list(range(2, 42, 4)) and not (out / LOCK_NAME).exists()


def test_bad_sampler_steps_are_refused_before_any_output(image_checkpoint, molecule_checkpoint, tmp_path, capsys):
    out = tmp_path / "never"
    assert eval_main(["images", "--ckpt", str(image_checkpoint), "--steps", "10,5000", "--metrics", "nll",
                      "--out", str(out)]) == 2
    assert "steps=5000; need an integer from 1 to 50" in capsys.readouterr().err and not out.exists()
    assert eval_main(["molecules", "--ckpt", str(molecule_checkpoint), "--steps", "5000", "--no-fcd", "--no-nspdk",
                      "--out", str(out)]) == 2
    assert "steps=5000" in capsys.readouterr().err and not out.exists()
    assert sample_main(["images", "--ckpt", str(image_checkpoint), "--steps", "5000", "--num", "2",
                        "--out", str(tmp_path / "grid.png"), "--images-dir", str(out)]) == 2
    captured = capsys.readouterr()
    assert "steps=5000" in captured.err and "0/2" not in captured.out + captured.err  # no progress bar began
    assert not out.exists() and not (tmp_path / "grid.png").exists()
