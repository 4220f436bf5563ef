"""The device kit: the wheels a lent GPU machine's Python lacks, fetched here (it reaches no package registry), and
the check that they travel with the repository within the transfer limit.

The lent image (docs/gpu.md) has Python 3.12 with PyTorch, Lightning, torchmetrics, torchvision, numpy, scipy,
networkx, scikit-learn, matplotlib, tensorboard, einops, rich and pyyaml, and none of diffusers, jsonargparse,
torch-fidelity, rdkit or fcd. `build_kit` resolves a tier's packages for that Python and platform with pip (no
install), drops what the image has (`PRESENT`), downloads the rest without dependencies, prints each wheel's
size, and refuses, plainly and before anything travels, a kit that with the tracked tree exceeds the limit.

Tiers: `images` (image and synthetic-graph models: diffusers, jsonargparse with its signature extras,
torch-fidelity) and `molecules` (the same, plus rdkit and fcd).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from qgfd_gen.errors import UsageError

LIMIT_BYTES = 64 * 2**20  # everything that travels to the device, the repository included
DEVICE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
TIERS = {"images": ("diffusers", "jsonargparse[signatures]", "torch-fidelity"),
         "molecules": ("diffusers", "jsonargparse[signatures]", "torch-fidelity", "rdkit", "fcd")}
# what the lent image already has (its packages and theirs): never carried
PRESENT = {"torch", "torchvision", "triton", "numpy", "scipy", "pillow", "networkx", "pyyaml", "tqdm", "packaging",
           "typing-extensions", "filelock", "fsspec", "jinja2", "sympy", "mpmath", "markupsafe", "setuptools",
           "lightning", "pytorch-lightning", "lightning-utilities", "torchmetrics", "scikit-learn", "joblib",
           "threadpoolctl", "matplotlib", "contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing",
           "python-dateutil", "six", "tensorboard", "einops", "rich", "markdown-it-py", "mdurl", "pygments"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def carried(name: str) -> bool:
    name = normalized(name)
    return name not in PRESENT and not name.startswith("nvidia-")


def tracked_tree_bytes(root: Path) -> int:
    """The size of the files git tracks (what a copy of the repository carries)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return sum((root / name).stat().st_size for name in listed.decode().split("\0") if name and (root / name).is_file())


def check_kit_size(wheels: list[Path], tree_bytes: int, limit: int = LIMIT_BYTES) -> dict[str, int]:
    """Each wheel's size, the kit's and the total with the tree; UsageError naming the sizes when over `limit`."""
    sizes = {wheel.name: wheel.stat().st_size for wheel in sorted(wheels)}
    kit = sum(sizes.values())
    total = kit + tree_bytes
    if total > limit:
        largest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
        raise UsageError(f"the kit ({kit / 2**20:.1f} MiB) and the tracked tree ({tree_bytes / 2**20:.1f} MiB) make "
                         f"{total / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB that may travel; largest wheels: "
                         + ", ".join(f"{n} {s / 2**20:.1f} MiB" for n, s in largest)
                         + " (the images tier leaves out rdkit and fcd)")
    return {**sizes, "kit_bytes": kit, "tree_bytes": tree_bytes, "total_bytes": total}


def _pip(arguments: list[str]) -> None:
    found = subprocess.run([sys.executable, "-m", "pip", *arguments], capture_output=True, text=True)
    if found.returncode:
        raise UsageError(f"pip {' '.join(arguments[:2])} failed (a package registry must be reachable here): "
                         + (found.stderr.strip().splitlines() or ["no message"])[-1])


def device_target(python: str) -> list[str]:
    """pip's options for the device's wheels: its Python, CPython, binary wheels of its platform only."""
    return [f"--python-version={python}", "--implementation=cp", "--only-binary=:all:",
            *(f"--platform={p}" for p in PLATFORMS)]


def resolve(packages: tuple[str, ...], python: str = DEVICE_PYTHON) -> list[tuple[str, str]]:
    """(name, version) of every wheel the packages need on the device's Python and platform (pip's resolver, no
    install), less what the image has."""
    target = device_target(python)
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        _pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), *target, *packages])
        installs = json.loads(report.read_text())["install"]
    return [(i["metadata"]["name"], i["metadata"]["version"]) for i in installs if carried(i["metadata"]["name"])]


def build_kit(out: Path, tier: str, root: Path, limit: int = LIMIT_BYTES, python: str = DEVICE_PYTHON,
              say: Callable[[str], None] = print) -> dict[str, int]:
    """Download the tier's wheels into `out` and check the travelling size; returns the sizes."""
    if tier not in TIERS:
        raise UsageError(f"--tier {tier!r}; choose one of {', '.join(TIERS)}")
    wanted = resolve(TIERS[tier], python)
    say(f"{len(wanted)} wheels for Python {python}: " + ", ".join(f"{n} {v}" for n, v in wanted))
    out.mkdir(parents=True, exist_ok=True)
    target = device_target(python)
    _pip(["download", "--no-deps", "--quiet", "--dest", str(out), *target, *(f"{n}=={v}" for n, v in wanted)])
    names = {normalized(n) for n, _ in wanted}
    wheels = [w for w in out.glob("*.whl") if normalized(w.name.split("-")[0]) in names]
    sizes = check_kit_size(wheels, tracked_tree_bytes(root), limit)
    for name, size in sizes.items():
        if name.endswith(".whl"):
            say(f"  {size / 2**20:7.2f} MiB  {name}")
    say(f"kit {sizes['kit_bytes'] / 2**20:.1f} MiB + tracked tree {sizes['tree_bytes'] / 2**20:.1f} MiB = "
        f"{sizes['total_bytes'] / 2**20:.1f} MiB of {limit / 2**20:.0f} MiB")
    return sizes
