"""`qgfd-eval images`: FID / IS (InceptionV3 or a given feature extractor) and NLL against sampler steps."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch

from datamodules.images import first_images
from models.adaptive_sampler import METHOD as ADAPTIVE_METHOD, AdaptiveSettings
from models.early_exit import EXIT_METHOD
from models.loading import load_datamodule, load_model
from qgfd_gen.checkpoints import check_file
from qgfd_gen.errors import CheckpointError
from qgfd_gen.io import atomic_path, check_outputs, file_digest

from .metrics import ImageQuality, InceptionUnavailable
from .distributed import Shard, launch
from .results import SweepResults
from .sweep import run_sweep

IMAGE_METRICS = ("fid", "is", "nll")


def build_image_quality(args, metrics: list[str]) -> tuple[Optional[ImageQuality], Optional[str], str]:
    """The FID/IS metric object (or None with the reason) and an id of its feature extractor."""
    want_fid, want_is = "fid" in metrics, "is" in metrics
    if not (want_fid or want_is):
        return None, None, ""
    if args.feature_extractor:
        extractor = torch.jit.load(args.feature_extractor, map_location="cpu").eval()
        quality = ImageQuality(extractor, want_fid=want_fid, want_is=want_is)
        return quality, None, "custom-" + file_digest(args.feature_extractor)
    try:
        return ImageQuality(None, args.inception_weights, want_fid, want_is), None, "inception-v3"
    except InceptionUnavailable as error:
        return None, str(error), ""


def load_or_compute_real_statistics(quality: ImageQuality, datamodule, args, extractor_id: str) -> None:
    """Real-image FID statistics, cached beside the data per data set, resolution, extractor and count."""
    if datamodule is None:
        raise CheckpointError("the checkpoint names no data module, so there are no real images for FID")
    size = getattr(datamodule, "image_size", "x")
    name = f"fid-stats-{type(datamodule).__name__}-{size}px-{extractor_id}-{args.num_samples}.pt"
    path = Path(datamodule.data_dir) / name
    if path.exists():
        quality.load_real_state(torch.load(path, weights_only=True))
        return
    datamodule.setup("fit")
    images = (first_images(datamodule.train_set, args.num_samples) + 1) / 2
    for lo in range(0, len(images), args.batch_size):
        quality.update_real(images[lo : lo + args.batch_size])
    with atomic_path(path) as tmp:
        torch.save({k: v.detach().cpu() for k, v in quality.real_state().items()}, tmp)


def held_out_nll(model, datamodule, args) -> Optional[float]:
    if datamodule is None:
        print("warning: the checkpoint names no data module: NLL not computed", file=sys.stderr)
        return None
    datamodule.setup("fit")
    images = first_images(datamodule.val_set, args.nll_images)
    start = time.perf_counter()
    nll = float(model.nll_bits_per_dim(images, timesteps=args.nll_timesteps, seed=args.seed).mean())
    print(f"NLL {nll:.4f} bits/dim on {len(images)} held-out images "
          f"({args.nll_timesteps or 'all'} timesteps, {time.perf_counter() - start:.1f} s)")
    return nll


def evaluate_images(args) -> int:
    args.checkpoint_sha256 = digest = file_digest(args.ckpt) if Path(args.ckpt).is_file() else None
    args.out = str(args.out or f"eval-images-{Path(args.ckpt).stem}-{(digest or '')[:8]}")
    check_outputs({"--out": args.out}, {"--ckpt": args.ckpt, "--feature-extractor": args.feature_extractor,
                                        "--inception-weights": args.inception_weights}, folders=("--out",))
    if args.devices * args.num_nodes > 1:  # a bad checkpoint is refused here, before any process starts
        check_file(args.ckpt, "images")
    return launch(_evaluate_images, args, args.devices, args.num_nodes, args.device, args.num_samples, args.batch_size)


def _evaluate_images(shard: Shard, args) -> Optional[int]:
    """One process's part: every process samples its share of each setting; the main process alone loads the
    metrics and reference data, scores the gathered samples and writes the results."""
    model = load_model(args.ckpt, "images", shard.device(args.device))
    results, quality, unavailable, nll = None, None, None, None
    if shard.is_main:
        results, quality, unavailable, nll = _prepare_scoring(model, args)

    def draw(setting, advance, batches):
        sampler = setting["sampler"]
        adaptive = (AdaptiveSettings(rtol=setting["rtol"], atol=setting["atol"], end_log_snr=setting["end_log_snr"])
                    if sampler == "adaptive" else None)
        return model.sample(args.num_samples, sampler=sampler, steps=setting["sampler_steps"],
                            eta=args.eta if sampler == "ddim" else 0.0, seed=args.seed, batch_size=args.batch_size,
                            exit_tol=setting["exit_tol"], adaptive=adaptive, progress=advance, batches=batches)

    def score(result) -> dict[str, Any]:
        scores = {}
        if quality is not None:
            quality.reset_fake()
            for lo in range(0, len(result.images), args.batch_size):
                quality.update_fake(result.images[lo : lo + args.batch_size])
            scores.update(quality.compute())
        if nll is not None:
            scores["nll_bpd"] = nll
        return scores

    run_sweep(model, args, results, args.sampler, draw, score, ("fid", "is", "nll_bpd"), shard)
    if not shard.is_main:
        return None
    samplers = ", ".join(dict.fromkeys(r["sampler"] for r in results.rows))  # the folder's, not this call's
    plot = results.plot(f"{Path(args.ckpt).name}: {samplers}, {args.num_samples} samples, seed {args.seed}")
    print(f"wrote {Path(args.out) / 'results.json'}, {Path(args.out) / 'results.csv'}" + (f", {plot}" if plot else ""))
    return 2 if unavailable else 0


def _prepare_scoring(model, args) -> tuple[SweepResults, Optional[ImageQuality], Optional[str], Optional[float]]:
    """The results folder (refused if it holds another run), FID / IS with their real-image statistics, NLL."""
    datamodule = load_datamodule(args.ckpt, data_dir=args.data_dir, flip=False)  # reference images unflipped
    quality, unavailable, extractor_id = build_image_quality(args, args.metrics)
    if unavailable:
        print(f"warning: {unavailable}", file=sys.stderr)
    identity = {"checkpoint_sha256": args.checkpoint_sha256, "eta": args.eta, "seed": args.seed,
                "num_samples": args.num_samples, "batch_size": args.batch_size, "metrics": args.metrics,
                "feature_extractor": extractor_id or None, "nll_images": args.nll_images,
                "nll_timesteps": args.nll_timesteps, "qgfd_max_iterations": args.qgfd_max_iterations,
                "adaptive_method": ADAPTIVE_METHOD, "exit_method": EXIT_METHOD}
    meta = {"identity": identity, "checkpoint": str(args.ckpt), "not_computed": unavailable}
    results = SweepResults(args.out, meta, metrics=[m for m in ("fid", "is", "nll_bpd") if m.split("_")[0] in args.metrics])
    if quality is not None and quality.fid is not None:
        load_or_compute_real_statistics(quality, datamodule, args, extractor_id)
    nll = held_out_nll(model, datamodule, args) if "nll" in args.metrics else None
    return results, quality, unavailable, nll
