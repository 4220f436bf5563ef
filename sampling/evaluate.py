"""qgfd-eval: quality against inference steps, with adaptive early stopping, from a checkpoint.

    qgfd-eval images --ckpt CKPT --num-samples 50000 --metrics fid,is,nll --steps 10,20,50,100,1000
                     [--sampler ddim] [--qgfd-eps 1e-3,1e-4] [--exit-tol 0.01] [--out DIR]
    qgfd-eval molecules --ckpt CKPT --num-samples 10000 --steps 50,100,500 [--qgfd-eps ...] [--exit-tol ...]
    qgfd-eval molecules --samples FILE.smi --train TRAIN.smi --test TEST.smi --json OUT.json

Each sweep writes DIR/results.json, DIR/results.csv (rows appended as they finish; a rerun skips the
settings already there) and DIR/quality_vs_steps.png. Rows: setting, sampler, steps, network
evaluations, mean QGFD iterations, wall time, samples, seed, checkpoint, the metrics, and what early
stopping saved against the fixed setting at the same steps. Exit status 2 when a requested metric
could not be computed (say FID without Inception weights); the others are still computed and written.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from qgfd_gen.attention import override_qgfd
from qgfd_gen.io import atomic_path, write_json
from qgfd_gen.metrics import ChemNetReference, ImageQuality, InceptionUnavailable, MoleculeMetrics, score_molecules

from .checkpoints import CheckpointError, load_model
from .nll import nll_bits_per_dim
from .results import SweepResults
from .sample import positive_int, progress_bar

IMAGE_METRICS = ("fid", "is", "nll")


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: need comma-separated integers, e.g. 10,20,50") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need positive integers")
    return values


def float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: need comma-separated numbers, e.g. 1e-3,1e-4") from None
    if min(values, default=1) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: tolerances must be positive")
    return values


def metric_list(text: str) -> list[str]:
    metrics = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in IMAGE_METRICS]
    if unknown or not metrics:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(IMAGE_METRICS)}")
    return metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgfd-eval", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="kind", required=True)

    def sweep_options(p: argparse.ArgumentParser, steps_default: str) -> None:
        p.add_argument("--num-samples", type=positive_int, default=1000)
        p.add_argument("--steps", type=int_list, default=int_list(steps_default))
        p.add_argument("--qgfd-eps", type=float_list, default=[], help="QGFD iteration tolerances to sweep")
        p.add_argument("--qgfd-steps", type=positive_int, default=None, help="max QGFD iterations with --qgfd-eps")
        p.add_argument("--exit-tol", type=float_list, default=[], help="sampler early-exit tolerances to sweep")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--batch-size", type=positive_int, default=256)
        p.add_argument("--out", default=None, help="results folder (default eval-<kind>-<checkpoint name>)")
        p.add_argument("--data-dir", default=None, help="where the checkpoint's data lives, if not where it was")
        p.add_argument("--device", default="cpu")

    images = sub.add_parser("images", help="FID / IS / NLL against sampling steps")
    images.add_argument("--ckpt", required=True)
    sweep_options(images, "10,20,50,100")
    images.add_argument("--metrics", type=metric_list, default=["fid", "is", "nll"])
    images.add_argument("--sampler", choices=["ddpm", "ddim", "dpm++"], default="ddim")
    images.add_argument("--eta", type=float, default=0.0)
    images.add_argument("--inception-weights", default=None, help="InceptionV3 weights file (torch-fidelity's)")
    images.add_argument("--feature-extractor", default=None,
                        help="TorchScript module used instead of InceptionV3 (forward -> logits, features -> features)")
    images.add_argument("--nll-images", type=positive_int, default=256, help="test images for NLL")
    images.add_argument("--nll-timesteps", type=positive_int, default=None, help="estimate NLL on this many timesteps")

    mols = sub.add_parser("molecules", help="validity / uniqueness / novelty / FCD against steps, or of a SMILES file")
    mols.add_argument("--ckpt", default=None)
    sweep_options(mols, "50,100,500")
    mols.add_argument("--no-fcd", action="store_true")
    mols.add_argument("--samples", default=None, help="score this SMILES file instead of sampling")
    mols.add_argument("--train", default=None, help="training SMILES (novelty), with --samples")
    mols.add_argument("--test", default=None, help="test SMILES (FCD), with --samples")
    mols.add_argument("--json", default=None, help="where to write the scores of --samples")
    return parser


# -------------------------------------------------------------------------------------------- settings
def sweep_settings(steps: list[int], qgfd_eps: list[float], exit_tol: list[float]) -> list[dict[str, Any]]:
    """Fixed steps first, then each early-stopping kind at each step count."""
    settings = [{"setting": "fixed", "steps": s, "qgfd_eps": None, "exit_tol": None} for s in steps]
    settings += [{"setting": f"qgfd-eps={e:g}", "steps": s, "qgfd_eps": e, "exit_tol": None} for e in qgfd_eps for s in steps]
    settings += [{"setting": f"exit-tol={t:g}", "steps": s, "qgfd_eps": None, "exit_tol": t} for t in exit_tol for s in steps]
    return settings


def add_savings(row: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """What early stopping saved against the fixed setting at the same steps (when that row exists)."""
    if row["setting"] == "fixed":
        return
    fixed = next((r for r in rows if r["setting"] == "fixed" and r["steps"] == row["steps"]), None)
    if fixed is None:
        return
    row["saved_network_evaluations"] = fixed["network_evaluations"] - row["network_evaluations"]
    if fixed.get("qgfd_iterations") and row.get("qgfd_iterations") is not None:
        row["saved_qgfd_iterations_pct"] = 100 * (1 - row["qgfd_iterations"] / fixed["qgfd_iterations"])
    row["saved_time_pct"] = 100 * (1 - row["seconds"] / fixed["seconds"]) if fixed["seconds"] else None


def run_sweep(model, args, results: SweepResults, sampler: str, draw: Callable, score: Callable, summary_keys) -> None:
    """Every setting not yet in `results`: sample (with the QGFD overrides of the setting), score, append."""
    for setting in sweep_settings(args.steps, args.qgfd_eps, args.exit_tol):
        key = {**setting, "sampler": sampler, "num_samples": args.num_samples, "seed": args.seed}
        if results.has(key):
            continue
        changes = {"eps": setting["qgfd_eps"]} if setting["qgfd_eps"] else {}
        if setting["qgfd_eps"] and args.qgfd_steps:
            changes["steps"] = args.qgfd_steps
        with override_qgfd(model, **changes), progress_bar() as bar:
            task = bar.add_task(f"{setting['setting']} steps={setting['steps']}", total=args.num_samples)
            result = draw(setting, lambda n: bar.advance(task, n))
        row = {**key, "network_evaluations": result.network_evaluations, "qgfd_iterations": result.qgfd_iterations,
               "seconds": result.seconds, "checkpoint": str(args.ckpt)}
        row.update(score(result))
        add_savings(row, results.rows)
        results.append(row)
        print(_summary(row, summary_keys))


def file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


# -------------------------------------------------------------------------------------------- images
def first_images(dataset, count: int) -> torch.Tensor:
    """The first `count` images of a data set (items may be (image, label)), in [-1, 1]: a fixed,
    reproducible set."""
    items = [dataset[index] for index in range(min(count, len(dataset)))]
    return torch.stack([item[0] if isinstance(item, (tuple, list)) else item for item in items])


def build_image_quality(args, metrics: list[str]) -> tuple[Optional[ImageQuality], Optional[str], str]:
    """The FID/IS metric object (or None with the reason) and an id of its feature extractor."""
    want_fid, want_is = "fid" in metrics, "is" in metrics
    if not (want_fid or want_is):
        return None, None, ""
    if args.feature_extractor:
        extractor = torch.jit.load(args.feature_extractor, map_location="cpu").eval()
        return ImageQuality(extractor, want_fid=want_fid, want_is=want_is), None, "custom-" + file_digest(args.feature_extractor)
    try:
        return ImageQuality(None, args.inception_weights, want_fid, want_is), None, "inception-v3"
    except InceptionUnavailable as error:
        return None, str(error), ""


def evaluate_images(args) -> int:
    model = load_model(args.ckpt, "images", args.device)
    datamodule = _datamodule(model, args, flip=False)  # reference images are not randomly flipped
    quality, unavailable, extractor_id = build_image_quality(args, args.metrics)
    if unavailable:
        print(f"warning: {unavailable}", file=sys.stderr)
    out = Path(args.out or f"eval-images-{Path(args.ckpt).stem}")
    meta = {"checkpoint": str(args.ckpt), "checkpoint_sha256": file_digest(args.ckpt), "sampler": args.sampler,
            "eta": args.eta, "num_samples": args.num_samples, "seed": args.seed, "metrics": args.metrics,
            "feature_extractor": extractor_id or None, "not_computed": unavailable}
    results = SweepResults(out, meta, metrics=[m for m in ("fid", "is", "nll_bpd") if m.split("_")[0] in args.metrics])

    if quality is not None and quality.fid is not None:
        _load_or_compute_real_statistics(quality, datamodule, args, extractor_id)

    nll = None
    if "nll" in args.metrics:
        if datamodule is None:
            print("warning: the checkpoint names no data module: NLL not computed", file=sys.stderr)
        else:
            datamodule.setup("fit")
            images = first_images(datamodule.val_set, args.nll_images)
            start = time.perf_counter()
            nll = float(nll_bits_per_dim(model, images, timesteps=args.nll_timesteps, seed=args.seed).mean())
            print(f"NLL {nll:.4f} bits/dim on {len(images)} held-out images "
                  f"({args.nll_timesteps or 'all'} timesteps, {time.perf_counter() - start:.1f} s)")

    def draw(setting, advance):
        return model.sample(args.num_samples, sampler=args.sampler, steps=setting["steps"], eta=args.eta, seed=args.seed,
                            batch_size=args.batch_size, exit_tol=setting["exit_tol"], progress=advance)

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

    run_sweep(model, args, results, args.sampler, draw, score, ("fid", "is", "nll_bpd"))
    plot = results.plot(f"{Path(args.ckpt).name}: {args.sampler}, {args.num_samples} samples")
    print(f"wrote {out / 'results.json'}, {out / 'results.csv'}" + (f", {plot}" if plot else ""))
    return 2 if unavailable else 0


def _load_or_compute_real_statistics(quality: ImageQuality, datamodule, args, extractor_id: str) -> None:
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


def _datamodule(model, args, **overrides):
    from models.checkpointing import datamodule_from_checkpoint

    return datamodule_from_checkpoint(model.checkpoint_record, data_dir=args.data_dir, **overrides)


# -------------------------------------------------------------------------------------------- molecules
def evaluate_smiles_file(args) -> int:
    if not (args.train and args.json):
        raise ValueError("--samples needs --train TRAIN.smi and --json OUT.json (and --test TEST.smi for FCD)")
    from datamodules.molecules import read_smiles_file

    lines = Path(args.samples).read_text().split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]  # the final newline ends the last line; it is no sample
    samples = [line.strip() or None for line in lines]
    train = read_smiles_file(Path(args.train))
    test = read_smiles_file(Path(args.test)) if args.test else None
    scores = score_molecules(samples, train, test, with_fcd=not args.no_fcd and test is not None)
    if "fcd" not in scores:
        scores["fcd"] = None
    scores["samples_file"] = str(args.samples)
    write_json(args.json, scores)
    print(_summary(scores, ("validity", "uniqueness", "novelty", "fcd")))
    return 0


def evaluate_molecules(args) -> int:
    if args.samples:
        return evaluate_smiles_file(args)
    if not args.ckpt:
        raise ValueError("give --ckpt CKPT to sample, or --samples FILE.smi to score a file")
    model = load_model(args.ckpt, "molecules", args.device)
    datamodule = _datamodule(model, args)
    if datamodule is None:
        raise CheckpointError("the checkpoint names no data module: training SMILES for novelty are unknown")
    train, test = datamodule.smiles("train"), datamodule.smiles("test")
    out = Path(args.out or f"eval-molecules-{Path(args.ckpt).stem}")
    meta = {"checkpoint": str(args.ckpt), "checkpoint_sha256": file_digest(args.ckpt), "num_samples": args.num_samples,
            "seed": args.seed, "train_molecules": len(train), "test_molecules": len(test)}
    metrics = ["validity", "uniqueness", "novelty"] + ([] if args.no_fcd else ["fcd"])
    results = SweepResults(out, meta, metrics)
    def draw(setting, advance):
        return model.sample(args.num_samples, steps=setting["steps"], seed=args.seed, batch_size=args.batch_size,
                            exit_tol=setting["exit_tol"], progress=advance)

    novelty = MoleculeMetrics(train)  # canonical training SMILES, once per sweep
    reference = None if args.no_fcd else ChemNetReference(test)  # test-set ChemNet statistics, once per sweep
    run_sweep(model, args, results, "posterior-jump", draw,
              lambda result: score_molecules(result.smiles, novelty, reference, with_fcd=not args.no_fcd), metrics)
    plot = results.plot(f"{Path(args.ckpt).name}: {args.num_samples} molecules")
    print(f"wrote {out / 'results.json'}, {out / 'results.csv'}" + (f", {plot}" if plot else ""))
    return 0


def _summary(row: dict[str, Any], keys) -> str:
    parts = [f"{row.get('setting', 'file')} steps={row.get('steps', '-')}"] if "setting" in row else []
    if "network_evaluations" in row:
        parts.append(f"NFE={row['network_evaluations']:.1f}")
    parts += [f"{k}={row[k]:.4f}" for k in keys if isinstance(row.get(k), float)]
    if "seconds" in row:
        parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return evaluate_images(args) if args.kind == "images" else evaluate_molecules(args)
    except (CheckpointError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
