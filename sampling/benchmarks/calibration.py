"""Calibrations: the scorecards scored on data whose answers are known, so that a figure from a model can be read.

- `moses_calibration`: a random sample of MOSES's training split scored as if a model had made it, beside the
  figures MOSES publishes for its training set (`MOSES_TRAIN`, from its `data/samples/train_metrics.csv`). MOSES's
  own property columns there are Frechet distances of mean and variance; here they are Wasserstein-1, so those
  are set beside nothing.
- `prdc_calibration`: two disjoint halves of CIFAR-10's training images, one scored against the other (both
  should score high, and about equal), then the second half with Gaussian pixel noise of growing strength (it
  should lose precision before recall: noisy images leave the real manifold, while the set still spans it).
"""

from __future__ import annotations

import io
import random
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from qgfd_gen.errors import UsageError

# MOSES's published metrics of its own training set (molecularsets/moses, data/samples/train_metrics.csv)
MOSES_TRAIN = {"validity": 1.0, "unique_1k": 1.0, "unique_10k": 1.0, "fcd": 0.007976, "snn_test": 0.641916,
               "frag_test": 0.999983, "scaf_test": 0.990743, "fcd_testsf": 0.475534, "snn_testsf": 0.585871,
               "frag_testsf": 0.998599, "scaf_testsf": 0.0, "intdiv1": 0.856676, "intdiv2": 0.850754, "filters": 1.0}
MOSES_FILES = ("train.csv.gz", "test.csv.gz", "test_scaffolds.csv.gz")


def _moses_files(data_dir: str) -> dict[str, Path]:
    folder = Path(data_dir)
    missing = [name for name in MOSES_FILES if not (folder / name).is_file()]
    if missing:
        raise UsageError(f"MOSES files {missing} are not in {str(folder)!r}; the calibration needs the benchmark's "
                         f"split there ({', '.join(MOSES_FILES)})")
    return {name: folder / name for name in MOSES_FILES}


def moses_calibration(data_dir: str, count: int = 30000, seed: int = 0, with_fcd: bool = True,
                      fcd_reference: int = 10000, say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Rows of (metric, ours, MOSES's, ours - MOSES's) for `count` training molecules drawn with `seed`. FCD runs
    ChemNet on every molecule (about 100 a second on this machine's CPU), so it compares with `fcd_reference`
    molecules drawn from each test set rather than all 176,074 (set beside the published figure with that said)."""
    from datamodules.smiles_files import read_smiles_file
    from models.measures.molecule_metrics import ChemNetReference, score_molecules
    from sampling.moses_scoring import moses_columns

    files = _moses_files(data_dir)
    train = read_smiles_file(files["train.csv.gz"], column="SMILES")
    if count > len(train):
        raise UsageError(f"--count {count}: MOSES's training split has {len(train)} molecules")
    sample = random.Random(seed).sample(train, count)
    test = read_smiles_file(files["test.csv.gz"], column="SMILES")
    test_sf = read_smiles_file(files["test_scaffolds.csv.gz"], column="SMILES")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    ours: dict[str, Any] = score_molecules(sample, sample[:1], None, with_fcd=False)  # validity and uniqueness
    ours.update(moses_columns(sample, test, test_sf))
    timings["moses_seconds"] = time.perf_counter() - start
    if with_fcd:
        start = time.perf_counter()
        drawn = random.Random(seed + 1)
        test_part = drawn.sample(test, min(fcd_reference, len(test)))
        test_sf_part = drawn.sample(test_sf, min(fcd_reference, len(test_sf)))
        say(f"FCD of {count} molecules against {len(test_part)} of Test and {len(test_sf_part)} of TestSF on ChemNet")
        ours["fcd"] = ChemNetReference(test_part).distance(sample)
        ours["fcd_testsf"] = ChemNetReference(test_sf_part).distance(sample)
        timings["fcd_seconds"] = time.perf_counter() - start
        timings["fcd_reference_molecules"] = float(len(test_part))
    rows = []
    for metric, value in ours.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and metric not in ("num_samples", "num_valid", "num_unique", "novelty"):
            published = MOSES_TRAIN.get(metric)
            rows.append({"metric": metric, "ours": float(value), "moses_train": published,
                         "difference": None if published is None else float(value) - published,
                         "molecules": count, "seed": seed, "test": len(test), "testsf": len(test_sf)})
    rows.append({"metric": "seconds", **{k: round(v, 1) for k, v in timings.items()}})
    return rows


def zip_images(path: str, count: int, seed: int) -> torch.Tensor:
    """`count` images of an image-folder zip (CIFAR-10's), drawn with `seed`, as [count, 3, H, W] in [0, 1]."""
    from PIL import Image

    if not Path(path).is_file():
        raise UsageError(f"--images {path!r} does not exist (CIFAR-10's training images as a zip of JPEG files)")
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png")))
        if count > len(names):
            raise UsageError(f"--count {count}: {path!r} holds {len(names)} images")
        chosen = random.Random(seed).sample(names, count)
        pictures = [np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB")) for n in chosen]
    return torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 255


def prdc_calibration(images_zip: str, per_half: int = 2500, noise: tuple[float, ...] = (0.05, 0.1, 0.2), seed: int = 0,
                     batch: int = 100, inception_weights: Optional[str] = None, feature_extractor: Any = None,
                     say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Rows of FID and precision / recall / density / coverage: half B against half A, then B with noise (on the
    FID Inception, or on `feature_extractor` when given)."""
    from models.measures.image_metrics import ImageQuality

    pictures = zip_images(images_zip, 2 * per_half, seed)
    first, second = pictures[:per_half], pictures[per_half:]
    quality = ImageQuality(feature_extractor, inception_weights, want_fid=True, want_is=False, want_prdc=True)
    start = time.perf_counter()
    for low in range(0, per_half, batch):
        quality.update_real(first[low:low + batch])
    say(f"reference half: {per_half} images on {quality.network} in {time.perf_counter() - start:.0f} s")
    rows = []
    generator = torch.Generator().manual_seed(seed)
    for sigma in (0.0, *noise):
        quality.reset_fake()
        start = time.perf_counter()
        for low in range(0, per_half, batch):
            part = second[low:low + batch]
            if sigma:
                part = (part + sigma * torch.randn(part.shape, generator=generator)).clamp(0, 1)
            quality.update_fake(part)
        scores = quality.compute()
        rows.append({"noise_sigma": sigma, "images_per_half": per_half, "network": quality.network, **scores,
                     "seconds": round(time.perf_counter() - start, 1)})
        say(f"noise {sigma:g}: " + ", ".join(f"{k} {scores[k]:.4g}" for k in ("fid", "precision", "recall", "density",
                                                                               "coverage")))
    return rows


def print_calibration_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    print(" | ".join(columns))
    for row in rows:
        cells = [row.get(c) for c in columns]
        print(" | ".join("–" if c is None else f"{c:.4g}" if isinstance(c, float) else str(c) for c in cells))
