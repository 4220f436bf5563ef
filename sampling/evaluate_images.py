"""`qgfd-eval images`: FID / IS (InceptionV3 or a given feature extractor) and NLL against sampler steps."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

from datamodules.image_sets import DatasetImages, ImageSet
from datamodules.images import first_images
from models.measures.image_metrics import ImageQuality, InceptionUnavailable, load_feature_extractor
from models.measures.reference_stats import ReferenceKey, reference_statistics
from models.processes.adaptive_sampler import METHOD as ADAPTIVE_METHOD, AdaptiveSettings
from models.processes.early_exit import EXIT_METHOD
from models.training.loading import load_datamodule, load_model
from qgfd_gen.errors import CheckpointError, DataUnavailableError

from .distributed import Shard
from .progress import progress_bar
from .results import SweepResults
from .settings import ImageEvaluation
from .sweep import check_sweep, launch_sweep, run_sweep, writer_lock

IMAGE_METRICS = ("fid", "kid", "is", "nll", "prdc")  # prdc: precision, recall, density, coverage
PRDC_COLUMNS = ("precision", "recall", "density", "coverage")
KID_SUBSET_SIZE = 1000  # torch-fidelity's and clean-fid's default subset size
FULL_FID_SAMPLES = 10_000  # the field's least count for FID; fewer are labelled with their count


def build_image_quality(metrics: tuple[str, ...], inception_weights: Optional[str], feature_extractor: Optional[str],
                        kid_subset_size: int) -> tuple[Optional[ImageQuality], Optional[str]]:
    """The FID / KID / IS metric object (or None) and what it cannot compute here (or None). Its `network` is the
    id recorded with every result and part of the reference statistics' key."""
    want_fid, want_kid, want_is, want_prdc = ("fid" in metrics, "kid" in metrics, "is" in metrics, "prdc" in metrics)
    if not (want_fid or want_kid or want_is or want_prdc):
        return None, None
    if feature_extractor:
        extractor, extractor_id = load_feature_extractor(feature_extractor)
        quality = ImageQuality(extractor, want_fid=want_fid, want_is=want_is, want_kid=want_kid,
                               kid_subset_size=kid_subset_size, extractor_id=extractor_id, want_prdc=want_prdc)
        return quality, None
    try:
        quality = ImageQuality(None, inception_weights, want_fid, want_is, want_kid, kid_subset_size=kid_subset_size,
                               want_prdc=want_prdc)
    except (InceptionUnavailable, DataUnavailableError) as error:
        return None, str(error)
    return quality, quality.unavailable


def fill_reference(quality: ImageQuality, images: ImageSet, batch_size: int) -> ReferenceKey:
    """The reference statistics of `images` into `quality`: from the cache, or computed once with a progress bar."""
    start = time.perf_counter()
    key = ReferenceKey.of(images, quality)
    with progress_bar() as bar:
        task = bar.add_task(f"reference statistics: {images.description}", total=len(images))
        path, computed = reference_statistics(quality, images.batches(batch_size), key,
                                              lambda n: bar.advance(task, n))
    print(f"reference statistics {'computed and cached' if computed else 'from the cache'}: {path} "
          f"({len(images)} images, {time.perf_counter() - start:.0f} s)")
    return key


def load_or_compute_real_statistics(quality: ImageQuality, datamodule, settings: ImageEvaluation) -> None:
    """The first `reference_images` training images' statistics, cached by their content, network and resize."""
    if datamodule is None:
        raise CheckpointError("the checkpoint names no data module, so there are no real images for FID")
    datamodule.setup("fit")
    count = settings.reference_images or settings.sweep.num_samples
    images = DatasetImages(datamodule.train_set, count, f"{type(datamodule).__name__}'s training set")
    fill_reference(quality, images, settings.sweep.batch_size)


def held_out_nll(model, datamodule, settings: ImageEvaluation) -> Optional[float]:
    if datamodule is None:
        print("warning: the checkpoint names no data module: NLL not computed", file=sys.stderr)
        return None
    datamodule.setup("fit")
    images = first_images(datamodule.val_set, settings.nll_images)
    start = time.perf_counter()
    nll = float(model.nll_bits_per_dim(images, timesteps=settings.nll_timesteps, seed=settings.sweep.seed).mean())
    print(f"NLL {nll:.4f} bits/dim on {len(images)} held-out images "
          f"({settings.nll_timesteps or 'all'} timesteps, {time.perf_counter() - start:.1f} s)")
    return nll


def evaluate_images(settings: ImageEvaluation) -> int:
    """Sweep the settings, score each with the metrics, write the results folder; exit status 2 when a
    requested metric could not be computed (the others still are)."""
    return launch_sweep(settings, "images", _evaluate_images,
                        {"--feature-extractor": settings.feature_extractor, "--inception-weights": settings.inception_weights})


def _evaluate_images(shard: Shard, job: tuple[ImageEvaluation, Optional[str]]) -> Optional[int]:
    """One process's part: every process samples its share of each setting; the main process alone loads the
    metrics and reference data, scores the gathered samples and writes the results."""
    settings, digest = job
    sweep = settings.sweep
    model = load_model(sweep.checkpoint, "images", shard.device(sweep.device))

    def adaptive_settings(setting) -> Optional[AdaptiveSettings]:
        return (AdaptiveSettings(rtol=setting["rtol"], atol=setting["atol"], end_log_snr=setting["end_log_snr"])
                if setting["sampler"] == "adaptive" else None)

    check_sweep(sweep, lambda s: model.check_sampling(sweep.num_samples, s["sampler"], s["sampler_steps"],
                                                      settings.eta if s["sampler"] == "ddim" else 0.0, s["exit_tol"],
                                                      adaptive_settings(s)))
    with writer_lock(shard, sweep.out):  # one run per results folder (the main process holds it)
        results, quality, unavailable, nll = None, None, None, None
        if shard.is_main:
            results, quality, unavailable, nll = _prepare_scoring(model, settings, digest)

        def draw(setting, advance, batches):
            sampler = setting["sampler"]
            return model.sample(sweep.num_samples, sampler=sampler, steps=setting["sampler_steps"],
                                eta=settings.eta if sampler == "ddim" else 0.0, seed=sweep.seed, batch_size=sweep.batch_size,
                                exit_levels=setting["exit_tol"], adaptive=adaptive_settings(setting), progress=advance, batches=batches)

        def score(result) -> dict[str, Any]:
            scores = {}
            if quality is not None:
                quality.reset_fake()
                for lo in range(0, len(result.images), sweep.batch_size):
                    quality.update_fake(result.images[lo : lo + sweep.batch_size])
                scores.update(quality.compute())
                scores.update(reference_images=quality.real_count, fid_network=quality.network)
                if quality.fid is not None and len(result.images) < FULL_FID_SAMPLES:  # small-sample FID is biased up
                    scores["fid_label"] = f"FID@{len(result.images)}"
            if nll is not None:
                scores["nll_bpd"] = nll
            return scores

        run_sweep(model, sweep, results, draw, score, ("fid", "kid", "is", "nll_bpd", *PRDC_COLUMNS), shard)
        if not shard.is_main:
            return None
        samplers = ", ".join(dict.fromkeys(r["sampler"] for r in results.rows))  # the folder's, not this call's
        plot = results.plot(f"{Path(sweep.checkpoint).name}: {samplers}, {sweep.num_samples} samples, seed {sweep.seed}")
        print(f"wrote {Path(sweep.out) / 'results.json'}, {Path(sweep.out) / 'results.csv'}" + (f", {plot}" if plot else ""))
        return 2 if unavailable else 0


def _prepare_scoring(model, settings: ImageEvaluation, digest: Optional[str]
                     ) -> tuple[SweepResults, Optional[ImageQuality], Optional[str], Optional[float]]:
    """The results folder (refused if it holds another run), FID / IS with their real-image statistics, NLL."""
    sweep = settings.sweep
    datamodule = load_datamodule(sweep.checkpoint, data_dir=sweep.data_dir)  # (its images are never flipped)
    subset = min(KID_SUBSET_SIZE, sweep.num_samples, settings.reference_images or sweep.num_samples)
    quality, unavailable = build_image_quality(settings.metrics, settings.inception_weights, settings.feature_extractor,
                                               subset)  # KID's subsets cannot exceed either set
    extractor_id = quality.network if quality is not None else ""
    if unavailable:
        print(f"warning: {unavailable}", file=sys.stderr)
    identity = {"checkpoint_sha256": digest, "eta": settings.eta, "seed": sweep.seed,
                "num_samples": sweep.num_samples, "batch_size": sweep.batch_size, "metrics": list(settings.metrics),
                "feature_extractor": extractor_id or None, "nll_images": settings.nll_images,
                "nll_timesteps": settings.nll_timesteps, **({"reference_images": settings.reference_images}
                                                             if settings.reference_images else {}),
                "qgfd_max_iterations": sweep.qgfd_max_iterations,
                "adaptive_method": ADAPTIVE_METHOD, "exit_method": EXIT_METHOD}
    meta = {"identity": identity, "checkpoint": sweep.checkpoint, "not_computed": unavailable,
            "fid_network": extractor_id or None, "resize": quality.resize if quality is not None else None}
    results = SweepResults(sweep.out, meta, metrics=[m for m in ("fid", "kid", "is", "nll_bpd") if m.split("_")[0] in settings.metrics]
                           + (list(PRDC_COLUMNS) if "prdc" in settings.metrics else []))
    if quality is not None and (quality.fid is not None or quality.kid is not None):
        load_or_compute_real_statistics(quality, datamodule, settings)
    nll = held_out_nll(model, datamodule, settings) if "nll" in settings.metrics else None
    return results, quality, unavailable, nll
