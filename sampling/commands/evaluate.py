"""qgfd-eval: quality against sampler steps, with adaptive early stopping, from a checkpoint.

    qgfd-eval images --ckpt CKPT --num-samples 50000 --metrics fid,is,nll --steps 10,20,50,100,1000
                     [--sampler ddim,dpm++,adaptive] [--rtol 0.1,0.2] [--atol 0.0078]
                     [--qgfd-tol 1e-3,1e-4] [--exit-levels 4] [--out DIR]
    qgfd-eval images --samples DIR|NPZ --reference DIR|NPZ|STATS [--metrics fid,kid] [--json OUT.json]
    qgfd-eval molecules --ckpt CKPT --num-samples 10000 --steps 50,100,500 [--qgfd-tol ...] [--exit-share 0.1]
    qgfd-eval molecules --samples FILE.smi --train TRAIN.smi --test TEST.smi --json OUT.json
    qgfd-eval graphs --ckpt CKPT --num-samples 40 --steps 50,100,500 [--kernel tv|emd] [--exit-share 0.1]
    qgfd-eval graphs --samples FILE.npz|EDGES.txt --benchmark planar|tree --json OUT.json

Each sweep writes DIR/results.json, DIR/results.csv (rows appended as they finish; a rerun skips the
settings already there) and DIR/quality_vs_steps.png. Rows: setting, sampler, sampler steps, network
evaluations, mean QGFD iterations, wall time, samples, seed, checkpoint, the metrics, and what early
stopping saved against the fixed setting at the same sampler steps. Exit status 2 when a requested
metric could not be computed (say FID without Inception weights); the others are still computed and written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from qgfd_gen.errors import UsageError, command

from .options import add_device_options, add_end_log_snr_option, device, float_list, int_list, positive_int, unit_interval

FILE_METRICS = ("fid", "kid", "is", "prdc")  # of image files: no model, so no NLL


def sampler_list(text: str) -> list[str]:
    from models.processes.gaussian_diffusion import SAMPLERS

    samplers = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in samplers if m not in SAMPLERS]
    if unknown or not samplers:
        raise argparse.ArgumentTypeError(f"{text!r}: choose one or more of {','.join(SAMPLERS)}")
    return list(dict.fromkeys(samplers))


def metric_list(text: str) -> list[str]:
    from sampling.evaluation_options import IMAGE_METRICS

    metrics = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in IMAGE_METRICS]
    if unknown or not metrics:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(IMAGE_METRICS)}")
    return metrics


def _sweep_options(parser: argparse.ArgumentParser, steps_default: str) -> None:
    parser.add_argument("--num-samples", type=positive_int, default=1000)
    parser.add_argument("--steps", type=int_list, default=None, help=f"sampler steps to sweep (default {steps_default})")
    parser.add_argument("--qgfd-tol", type=float_list, default=[], help="QGFD iteration tolerances to sweep")
    parser.add_argument("--qgfd-max-iterations", type=positive_int, default=None,
                        help="at most this many QGFD iterations with --qgfd-tol")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--out", default=None,
                        help="results folder (default eval-<kind>-<checkpoint name>-<content hash>)")
    parser.add_argument("--data-dir", default=None, help="where the checkpoint's data lives, if not where it was")
    parser.add_argument("--device", type=device, default="cpu")
    add_device_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgfd-eval", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    images = sub.add_parser("images", help="FID / KID / IS / NLL against sampler steps, or of an image set")
    images.add_argument("--ckpt", default=None)
    _sweep_options(images, "10,20,50,100")
    images.add_argument("--metrics", type=metric_list, default=None,
                        help=f"default fid,kid,is,nll,prdc (with --samples: {','.join(FILE_METRICS)}); prdc: precision, "
                             f"recall, density and coverage (k = 3) in FID's features")
    images.add_argument("--sampler", type=sampler_list, default=["ddim"],
                        help="one or more of ddpm,ddim,dpm++,dpm++-unclipped,adaptive (comma-separated): each is swept")
    images.add_argument("--rtol", type=float_list, default=None,
                        help="adaptive sampler: relative tolerances to sweep (default: AdaptiveSettings.rtol, 0.1)")
    images.add_argument("--atol", type=float_list, default=None,
                        help="adaptive sampler: absolute tolerances to sweep, [-1, 1] units (default: AdaptiveSettings.atol, 0.0078)")
    add_end_log_snr_option(images)
    images.add_argument("--exit-levels", "--exit-tol", dest="exits", type=float_list, default=[],
                        help="per-image early exit: 8-bit levels the image may still move (sweeps each; 4 costs no FID "
                             "on the digits model)")
    images.add_argument("--eta", type=unit_interval, default=0.0, help="DDIM noise, 0 (deterministic) to 1")
    images.add_argument("--inception-weights", default=None, help="InceptionV3 weights file (torch-fidelity's)")
    images.add_argument("--feature-extractor", default=None,
                        help="TorchScript module used instead of InceptionV3 (forward -> logits, features -> features)")
    images.add_argument("--nll-images", type=positive_int, default=256, help="test images for NLL")
    images.add_argument("--nll-timesteps", type=positive_int, default=None, help="estimate NLL on this many timesteps")
    images.add_argument("--reference-images", type=positive_int, default=None,
                        help="training images in the FID / KID reference (default: as many as --num-samples)")
    images.add_argument("--samples", default=None,
                        help="score this image folder or .npz of uint8 images instead of sampling (with --reference)")
    images.add_argument("--reference", default=None,
                        help="with --samples: reference images (folder or .npz) or their statistics (.pt that "
                             "--save-reference wrote, or an .npz of mu and sigma)")
    images.add_argument("--save-reference", default=None, help="with --samples: also write the reference's statistics here")
    images.add_argument("--json", default=None, help="with --samples: where to write the scores")

    mols = sub.add_parser("molecules", help="validity / uniqueness / novelty / FCD against steps, or of a SMILES file")
    mols.add_argument("--ckpt", default=None)
    _sweep_options(mols, "50,100,500")
    mols.add_argument("--exit-share", "--exit-tol", dest="exits", type=float_list, default=[],
                      help="per-molecule early exit: the share of the chain's timesteps (0..1] over which the predicted "
                           "molecule must stay the same valid, connected molecule (sweeps each)")
    mols.add_argument("--no-fcd", action="store_true")
    mols.add_argument("--no-nspdk", action="store_true", help="skip the NSPDK MMD against the test set (about 10 s a row)")
    mols.add_argument("--moses", action="store_true",
                      help="MOSES's scorecard too: Filters, IntDiv1/2, unique@1k/10k, and SNN, Frag, Scaf and the "
                           "logP/SA/QED/weight Wasserstein distances against Test (and TestSF); the references' "
                           "statistics are computed once (minutes for MOSES's test set) and cached")
    mols.add_argument("--samples", default=None, help="score this SMILES file instead of sampling")
    mols.add_argument("--train", default=None, help="training SMILES (novelty), with --samples")
    mols.add_argument("--test", default=None, help="test SMILES (FCD; --moses: Test), with --samples")
    mols.add_argument("--test-sf", default=None, help="MOSES's scaffold test SMILES (--moses: TestSF), with --samples")
    mols.add_argument("--json", default=None, help="where to write the scores of --samples")

    add_graph_parser(sub)
    return parser


def add_graph_parser(sub: argparse._SubParsersAction) -> None:
    """`qgfd-eval graphs`: a checkpoint's sweep, or a file of graphs with the benchmark to compare with."""
    graphs = sub.add_parser("graphs", help="V.U.N. and degree / clustering / orbit / spectrum MMDs against steps, or of a file")
    graphs.add_argument("--ckpt", default=None)
    _sweep_options(graphs, "50,100,500")
    graphs.set_defaults(num_samples=40)  # the benchmarks' test sets are 40 graphs
    graphs.add_argument("--exit-share", "--exit-tol", dest="exits", type=float_list, default=[],
                        help="per-graph early exit: the share of the chain's timesteps (0..1] over which the predicted "
                             "graph must stay the same valid graph (sweeps each)")
    graphs.add_argument("--kernel", choices=("tv", "emd"), default="tv",
                        help="MMD kernel: Gaussian total variation (SPECTRE, DeFoG) or Gaussian EMD (GraphRNN)")
    graphs.add_argument("--samples", default=None,
                        help="score this file instead of sampling: .npz of adjacency matrices, or text edge lists")
    graphs.add_argument("--benchmark", default=None, help="with --samples: planar or tree, the graphs to compare with")
    graphs.add_argument("--graph-size", type=positive_int, default=64, help="with --samples: the benchmark's nodes per graph")
    graphs.add_argument("--json", default=None, help="where to write the scores of --samples")


def sweep_from_options(args: argparse.Namespace, samplers: list[str]) -> "SweepSettings":
    """The parsed options of a sweep, as the evaluations take them (the defaults of an option not given are
    `sampling.evaluation_options`', which a study's `evaluate:` block shares)."""
    from models.processes.adaptive_sampler import AdaptiveSettings
    from sampling.evaluation_options import DEFAULT_STEPS
    from sampling.settings import SweepSettings

    if args.kind == "images":
        args.rtol = args.rtol or [AdaptiveSettings.rtol]
        args.atol = args.atol or [AdaptiveSettings.atol]
    return SweepSettings(
        checkpoint=str(args.ckpt), out=args.out, samplers=tuple(samplers), steps=tuple(args.steps or DEFAULT_STEPS[args.kind]),
        num_samples=args.num_samples, seed=args.seed, batch_size=args.batch_size, qgfd_tol=tuple(args.qgfd_tol),
        qgfd_max_iterations=args.qgfd_max_iterations, exits=tuple(args.exits), rtol=tuple(getattr(args, "rtol", ())),
        atol=tuple(getattr(args, "atol", ())), end_log_snr=getattr(args, "end_log_snr", None), data_dir=args.data_dir,
        device=args.device, devices=args.devices, num_nodes=args.num_nodes)


def image_evaluation(args: argparse.Namespace) -> "ImageEvaluation":
    from sampling.evaluation_options import IMAGE_METRICS
    from sampling.settings import ImageEvaluation

    return ImageEvaluation(sweep_from_options(args, args.sampler), metrics=tuple(args.metrics or IMAGE_METRICS), eta=args.eta,
                           inception_weights=args.inception_weights, feature_extractor=args.feature_extractor,
                           nll_images=args.nll_images, nll_timesteps=args.nll_timesteps,
                           reference_images=args.reference_images)


def image_file_scoring(args: argparse.Namespace) -> "ImageFileScoring":
    """--samples with --reference, refusing the options that only a checkpoint's sweep takes."""
    from sampling.settings import ImageFileScoring

    if not (args.samples and args.reference):
        raise UsageError(f"--samples and --reference go together (got only --{'samples' if args.samples else 'reference'})")
    if args.ckpt:
        raise UsageError("--ckpt samples a model; --samples scores images already made: give one of them")
    if args.metrics and "nll" in args.metrics:
        raise UsageError("--metrics nll needs a model (--ckpt); image files give fid, kid, is and prdc")
    if args.out:
        raise UsageError(f"--out {args.out!r} names a sweep's results folder; scoring files writes one JSON: give "
                         f"--json FILE instead")
    metrics = tuple(args.metrics or FILE_METRICS)
    return ImageFileScoring(args.samples, args.reference, args.json, metrics=metrics,
                            inception_weights=args.inception_weights, feature_extractor=args.feature_extractor,
                            batch_size=min(args.batch_size, 100), save_reference=args.save_reference)


def run_evaluation(args: argparse.Namespace) -> int:
    """qgfd-eval's parsed options, run: an image, molecule or graph sweep, or a file of samples scored."""
    from models.processes.graph_diffusion import CHAIN_SAMPLER
    from sampling.settings import GraphEvaluation, GraphFileScoring, MoleculeEvaluation, SmilesFileScoring

    if args.kind == "images":
        from sampling.evaluate_images import evaluate_images
        from sampling.score_image_files import score_image_files
    elif args.kind == "graphs":
        from sampling.evaluate_graphs import evaluate_graphs, score_graph_file
    else:
        from sampling.evaluate_molecules import evaluate_molecules, evaluate_smiles_file
    if args.kind == "images":
        if args.samples or args.reference:
            return score_image_files(image_file_scoring(args))
        if not args.ckpt:
            raise UsageError("give --ckpt CKPT to sample, or --samples DIR|NPZ --reference DIR|NPZ|STATS to score images")
        return evaluate_images(image_evaluation(args))
    if args.kind == "graphs":
        if args.samples:
            if args.ckpt:
                raise UsageError("--ckpt samples a model; --samples scores graphs already made: give one of them")
            if not args.benchmark:
                raise UsageError("--samples needs --benchmark planar|tree: the graphs they are compared with")
            return score_graph_file(GraphFileScoring(args.samples, args.benchmark, args.json, num_nodes=args.graph_size,
                                                     seed=args.seed, kernel=args.kernel))
        if not args.ckpt:
            raise UsageError("give --ckpt CKPT to sample, or --samples FILE --benchmark planar|tree to score a file")
        return evaluate_graphs(GraphEvaluation(sweep_from_options(args, [CHAIN_SAMPLER]), kernel=args.kernel))
    if args.samples:
        return evaluate_smiles_file(SmilesFileScoring(args.samples, args.train, args.test, args.json,
                                                      fcd=not args.no_fcd, nspdk=not args.no_nspdk,
                                                      moses=args.moses, test_sf=args.test_sf))
    if not args.ckpt:
        raise UsageError("give --ckpt CKPT to sample, or --samples FILE.smi to score a file")
    if args.test_sf:
        raise UsageError("--test-sf goes with --samples; a checkpoint's data module names its own test sets")
    return evaluate_molecules(MoleculeEvaluation(sweep_from_options(args, [CHAIN_SAMPLER]), fcd=not args.no_fcd,
                                                 nspdk=not args.no_nspdk, moses=args.moses))


@command
def main(argv: Optional[list[str]] = None) -> int:
    return run_evaluation(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
