"""`qgfd-eval images --samples DIR|NPZ --reference DIR|NPZ|STATS`: FID and KID of images made anywhere, on the
same network as every other evaluation here (as torch-fidelity's `fidelity --input1 --input2` and clean-fid's
`compute_fid(dir1, dir2)` do). Both sets are checked whole before any network runs."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

from datamodules.image_sets import ImageSet, is_statistics_file, open_image_set
from models.measures.image_metrics import ImageQuality
from models.measures.reference_stats import ReferenceKey, load_statistics, save_statistics
from qgfd_gen.errors import UsageError
from qgfd_gen.io import check_outputs, write_json

from .evaluate_images import FULL_FID_SAMPLES, KID_SUBSET_SIZE, build_image_quality, fill_reference
from .progress import progress_bar
from .settings import ImageFileScoring


def load_reference(quality: ImageQuality, path: str, images: Optional[ImageSet], batch_size: int
                   ) -> tuple[str, Optional[ReferenceKey]]:
    """`quality`'s reference state from a statistics file (`images` None) or from the images (cached by content);
    what it came from, and its key (None for a mu / sigma .npz)."""
    if images is not None:
        return images.description, fill_reference(quality, images, batch_size)
    key = load_statistics(path, quality)
    if key is None:
        print(f"note: {path!r} holds mu and sigma only: they are taken as computed with {quality.network}")
    if quality.kid is not None:  # KID's subsets cannot exceed the reference, whose size the file told
        quality.kid.subset_size = min(quality.kid.subset_size, quality.real_count)
    return str(path), key


def score_image_files(scoring: ImageFileScoring) -> int:
    """Score the samples against the reference; print the scores and write them to `scoring.json`. Exit status 2
    when a requested metric could not be computed (the others still are)."""
    check_outputs({"--json": scoring.json, "--save-reference": scoring.save_reference},
                  {"--samples": scoring.samples, "--reference": scoring.reference,
                   "--inception-weights": scoring.inception_weights, "--feature-extractor": scoring.feature_extractor})
    samples = open_image_set(scoring.samples, "--samples")
    reference_is_stats = is_statistics_file(scoring.reference)
    reference = None if reference_is_stats else open_image_set(scoring.reference, "--reference")
    if reference_is_stats and scoring.save_reference:
        raise UsageError("--save-reference writes the statistics of reference images; --reference is already a "
                         "statistics file")
    for name, images in (("--samples", samples), ("--reference", reference)):
        if images is not None and len(images) < 2:  # a mean and covariance need two; known now, not after the work
            raise UsageError(f"{name} {images.description}: FID, KID and precision / recall need at least 2 images")
    subset = min(KID_SUBSET_SIZE, len(samples), len(reference) if reference is not None else KID_SUBSET_SIZE)
    quality, unavailable = build_image_quality(scoring.metrics, scoring.inception_weights, scoring.feature_extractor,
                                               subset)
    if quality is None:
        raise UsageError(unavailable or f"--metrics {','.join(scoring.metrics)}: nothing to compute on image files")
    if unavailable:
        print(f"warning: {unavailable}", file=sys.stderr)
    reference_source, key = load_reference(quality, scoring.reference, reference, scoring.batch_size)
    if scoring.save_reference:
        save_statistics(scoring.save_reference, quality, key)
        print(f"wrote the reference statistics to {scoring.save_reference}")
    start = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(f"samples: {samples.description}", total=len(samples))
        for batch in samples.batches(scoring.batch_size):
            quality.update_fake(batch)
            bar.advance(task, len(batch))
    scores: dict[str, Any] = quality.compute()
    reference_count = quality.real_count if reference is not None or key is not None else None  # mu/sigma: unknown
    scores.update(samples=len(samples), reference_images=reference_count, fid_network=quality.network,
                  resize=quality.resize, samples_source=str(scoring.samples), reference_source=reference_source,
                  seconds=round(time.perf_counter() - start, 1), not_computed=unavailable)
    if quality.fid is not None and len(samples) < FULL_FID_SAMPLES:  # small-sample FID is biased upwards
        scores["fid_label"] = f"FID@{len(samples)}"
    shown = ("fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density", "coverage")
    print(" ".join(f"{name} {scores[name]:.4g}" for name in shown if isinstance(scores.get(name), float))
          + f" ({len(samples)} samples, {reference_count or 'an unknown number of'} reference images, {quality.network})")
    if scoring.json:
        write_json(scoring.json, scores)
        print(f"wrote {scoring.json}")
    return 2 if unavailable else 0
