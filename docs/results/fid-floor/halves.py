"""The FID / KID floor of CIFAR-10 here: two disjoint random 5,000-image halves of the training set, scored
against each other with qgfd-eval on the 2015-12-05 Inception. A model's FID@5000 cannot be expected below it.

    python docs/results/fid-floor/halves.py CIFAR10_TRAIN.zip|FOLDER [--out docs/results/fid-floor]

Draws 10,000 training images without replacement (numpy seed 0, over the sorted file names), writes them as
two uint8 .npz arrays in a temporary folder, and runs
`qgfd-eval images --samples half_a.npz --reference half_b.npz --metrics fid,kid --json OUT/halves.json`.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

HALF = 5000


def read_images(source: Path) -> tuple[list[str], callable]:
    if source.suffix == ".zip":
        archive = zipfile.ZipFile(source)
        names = sorted(n for n in archive.namelist() if n.lower().endswith((".jpg", ".png")))
        return names, lambda name: Image.open(io.BytesIO(archive.read(name)))
    names = sorted(str(p) for p in source.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    return names, Image.open


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    names, open_image = read_images(args.source)
    chosen = np.random.default_rng(0).permutation(len(names))[: 2 * HALF]
    with tempfile.TemporaryDirectory() as tmp:
        halves = []
        for k, part in enumerate((chosen[:HALF], chosen[HALF:])):
            images = np.stack([np.asarray(open_image(names[i]).convert("RGB")) for i in part])
            halves.append(Path(tmp) / f"half_{'ab'[k]}.npz")
            np.savez(halves[-1], images)
        print(f"{len(names)} images; two halves of {HALF} ({images.shape[1]}x{images.shape[2]})", flush=True)
        command = ["qgfd-eval", "images", "--samples", str(halves[0]), "--reference", str(halves[1]),
                   "--metrics", "fid,kid", "--json", str(args.out / "halves.json")]
        return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
