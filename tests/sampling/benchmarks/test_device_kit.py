"""The device kit's size check and the prepared device check, rehearsed end to end on the CPU (no registry: the
rehearsal's kit is empty, since this machine has every package)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT_DIR
from qgfd_gen.errors import UsageError
from sampling.benchmarks.device_kit import carried, check_kit_size, tracked_tree_bytes


def test_the_size_check_refuses_a_kit_over_the_limit(tmp_path):
    wheels = []
    for name, size in (("rdkit-1-cp312-x.whl", 3000), ("diffusers-1-py3-none-any.whl", 1000)):
        (tmp_path / name).write_bytes(b"x" * size)
        wheels.append(tmp_path / name)
    sizes = check_kit_size(wheels, tree_bytes=500, limit=5000)
    assert sizes["kit_bytes"] == 4000 and sizes["total_bytes"] == 4500
    with pytest.raises(UsageError, match=r"over the 0 MiB that may travel; largest wheels: rdkit-1-cp312-x.whl"):
        check_kit_size(wheels, tree_bytes=500, limit=4000)


def test_what_the_device_has_never_travels():
    assert not carried("torch") and not carried("nvidia-cublas-cu12") and not carried("PyYAML")
    assert not carried("typing_extensions") and carried("diffusers") and carried("rdkit")
    assert tracked_tree_bytes(ROOT_DIR) > 0


def test_the_device_check_rehearses_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    environment = {**os.environ, "PYTHON": sys.executable, "KIT": str(tmp_path / "kit"), "OUT": str(out), "TINY": "1",
                   "CONFIGS": "cifar,planar", "BUDGET": "400"}
    found = subprocess.run(["bash", "sampling/benchmarks/device_check.sh"], cwd=ROOT_DIR, env=environment,
                           capture_output=True, text=True, timeout=600)
    assert found.returncode == 0, (found.stdout + found.stderr)[-3000:]
    result = json.loads((out / "gpu.json").read_text())
    assert "partial" not in result and {r["config"] for r in result["rows"] if r["part"] == "train"} == {"cifar", "planar"}
    with np.load(out / "samples.npz") as saved:
        assert saved["images"].dtype == np.uint8 and saved["images"].shape == (8, 16, 16, 3)  # tiny: 16 pixels
    table = (out / "gpu-table.txt").read_text()
    assert "environment ready" in table and "exit status 0" in table
