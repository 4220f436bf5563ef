"""qgfd-bench: speed and memory of QGFD against plain attention, measured side by side in one run.

    qgfd-bench operator                         # operator suite, writes bench-operator.json
    qgfd-bench operator --sizes 256,1024 --out my.json
    qgfd-bench unet            # training step of the CIFAR-10 U-Net, QGFD against vanilla
    qgfd-bench molecules       # graph denoiser step and sampler throughput, QGFD against alpha 0
    qgfd-bench structure       # every structure study arm's training step against vanilla's (MOSES size)
    qgfd-bench structure --study configs/studies/qm9-structure.yaml   # that study's arms, on its data
    qgfd-bench sampler         # the workbench's samplers against diffusers' loop on the same U-Net
    qgfd-bench gpu             # the published-scale configs on one GPU, about 10 minutes (--tiny: CPU)
    qgfd-bench moses-calibration   # MOSES's scorecard of 30,000 training molecules beside MOSES's published row
    qgfd-bench prdc-calibration    # precision / recall of two CIFAR-10 halves, then of one half with noise
    qgfd-bench predict             # the published-scale configs on one H100, on paper (FLOPs and launches counted here)
    qgfd-bench kit --tier images   # the wheels a lent GPU lacks, into kit/, with the travelling size checked

Every figure is a median over repeats after one warm-up; ratios compare runs made in the same process. The
suites are `sampling.benchmarks`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from qgfd_gen.errors import command

from .options import int_list, number_in, positive_float, positive_int

SUITES = ("operator", "unet", "molecules", "structure", "sampler", "gpu", "moses-calibration", "prdc-calibration", "kit",
          "predict")
alpha_value = number_in(0, 1, include_high=False, what="QGFD's alpha")


def mode_list(text: str) -> list[str]:
    from sampling.benchmarks.operator import MODES

    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(MODES)}")
    return modes


def config_list(text: str) -> list[str]:
    from sampling.benchmarks.gpu import GPU_CONFIGS

    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names or any(c not in GPU_CONFIGS for c in names):
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(GPU_CONFIGS)}")
    return names


def _suite_parser(sub: argparse._SubParsersAction, suite: str, text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(suite, help=text, description=text)
    parser.add_argument("--out", default=None, help=f"JSON file (default bench-{suite}.json)")
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    return parser


def _device_and_calibration_parsers(sub: argparse._SubParsersAction) -> None:
    """The suites that prepare a device run (predict, kit) and the scorecards' calibrations."""
    predict = _suite_parser(sub, "predict", "the published-scale configs on one H100, predicted from counts made here")
    predict.add_argument("--configs", type=lambda t: [c.strip() for c in t.split(",") if c.strip()], default=None,
                         help="cifar,celeba,planar,moses (default: all four)")
    predict.add_argument("--probe-batch", type=positive_int, default=None, help="batch the step is counted at (2)")
    kit = sub.add_parser("kit", help="the wheels a lent GPU machine lacks, with the travelling size checked")
    kit.add_argument("--tier", choices=("images", "molecules"), default="images",
                     help="images: diffusers, jsonargparse, torch-fidelity; molecules: also rdkit and fcd")
    kit.add_argument("--out", default="kit", help="where the wheels go (default kit/, ignored by git)")
    kit.add_argument("--limit-mib", type=positive_float, default=64.0, help="what may travel, the tree included (64)")
    prdc = _suite_parser(sub, "prdc-calibration", "precision / recall of two CIFAR-10 halves, then with noise")
    prdc.add_argument("--images", default=None, help="CIFAR-10's images as a zip (default ../shared/data/cifar10-train-jpg.zip)")
    prdc.add_argument("--count", type=positive_int, default=None, help="images per half (2500)")
    prdc.add_argument("--noise", type=lambda t: [float(x) for x in t.split(",")], default=None,
                      help="pixel noise sigmas on [0, 1] images (0.05,0.1,0.2)")
    prdc.add_argument("--seed", type=int, default=None, help="the draw's seed (0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgfd-bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="suite", required=True, metavar="{" + ",".join(SUITES) + "}")
    operator = _suite_parser(sub, "operator", "QGFD's value form against SDPA and the seed formula, per transition")
    operator.add_argument("--sizes", type=int_list, default=[256, 1024, 4096])
    operator.add_argument("--modes", type=mode_list, default=None, help="transitions (default grid,knn,adjacency,dense)")
    operator.add_argument("--dim", type=positive_int, default=64)
    operator.add_argument("--heads", type=positive_int, default=4)
    operator.add_argument("--batch", type=positive_int, default=None, help="batch size (2)")
    operator.add_argument("--iterations", type=positive_int, default=6, help="QGFD diffusion iterations")
    operator.add_argument("--alpha", type=alpha_value, default=0.5)
    unet = _suite_parser(sub, "unet", "a training step of the CIFAR-10 U-Net, QGFD against vanilla")
    unet.add_argument("--batch", type=positive_int, default=None, help="batch size (4)")
    molecules = _suite_parser(sub, "molecules", "graph denoiser step and sampler throughput, QGFD against alpha 0")
    molecules.add_argument("--batch", type=positive_int, default=None, help="batch size (256)")
    molecules.add_argument("--num-molecules", type=positive_int, default=256, help="molecules sampled")
    molecules.add_argument("--sample-steps", type=positive_int, default=50, help="sampler steps")
    structure = _suite_parser(sub, "structure", "every structure study arm's training step against vanilla's")
    structure.add_argument("--batch", type=positive_int, default=None, help="batch size (64)")
    structure.add_argument("--study", default=None, help="a graph study file; time its arms on its base config's data")
    sampler = _suite_parser(sub, "sampler", "the workbench's samplers against diffusers' loop on the same U-Net")
    sampler.add_argument("--num-images", type=positive_int, default=None, help="images per run (64)")
    sampler.add_argument("--sample-steps", type=positive_int, default=50, help="sampler steps")
    sampler.add_argument("--ckpt", default=None, help="an image checkpoint (default: digits U-Net)")
    gpu = _suite_parser(sub, "gpu", "the published-scale configs on one GPU, about 10 minutes (--tiny: the CPU)")
    gpu.add_argument("--tiny", action="store_true", help="the same code on the CPU at tiny sizes")
    gpu.add_argument("--train-steps", type=positive_int, default=None, help="steps per part (200; tiny 3)")
    gpu.add_argument("--part-budget", type=positive_float, default=None,
                     help="seconds a part may take before it is cut short (training: 40, or less so that all configs "
                          "fit 7 minutes; tiny 120)")
    gpu.add_argument("--configs", type=config_list, default=None, help="configs to check (default: all)")
    gpu.add_argument("--num-images", type=positive_int, default=None, help="CIFAR-10 images sampled (1000)")
    gpu.add_argument("--reference", default=None, help="CIFAR-10 reference images (folder, .npz) or statistics")
    gpu.add_argument("--samples-npz", default=None,
                     help="also write the sampled CIFAR-10 images here as a uint8 .npz, to score them elsewhere")
    gpu.add_argument("--data-dir", default=None,
                     help="where the configs' data sets are (default: each config's data_dir); a set that is not there "
                          "is replaced by random inputs, never downloaded")
    moses = _suite_parser(sub, "moses-calibration", "MOSES's scorecard of its own training molecules, beside MOSES's row")
    moses.add_argument("--data-dir", default=None, help="MOSES's split (default ../shared/data/moses)")
    moses.add_argument("--count", type=positive_int, default=None, help="training molecules drawn (30000)")
    moses.add_argument("--seed", type=int, default=None, help="the draw's seed (0)")
    moses.add_argument("--no-fcd", action="store_true", help="skip FCD (ChemNet on the test sets: the slow part)")
    moses.add_argument("--fcd-reference", type=positive_int, default=None,
                       help="molecules drawn from each test set for FCD (10000; ChemNet runs about 100 a second here)")
    _device_and_calibration_parsers(sub)
    return parser


def modern_argv(argv: list[str]) -> list[str]:
    """The old `--suite NAME` spelling (and no suite at all, which meant the operator suite) as a subcommand, with
    a one-line deprecation notice naming the new form."""
    if argv and (argv[0] in SUITES or argv[0] in ("-h", "--help")):
        return argv
    suite, rest, skip = "operator", [], False
    for index, item in enumerate(argv):
        if skip:
            skip = False
        elif item == "--suite" and index + 1 < len(argv):
            suite, skip = argv[index + 1], True
        elif item.startswith("--suite="):
            suite = item.split("=", 1)[1]
        else:
            rest.append(item)
    new = [suite, *rest]
    print(f"qgfd-bench: this spelling is deprecated; use `qgfd-bench {' '.join(new)}`", file=sys.stderr)
    return new


@command
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(modern_argv(list(sys.argv[1:] if argv is None else argv)))
    if args.suite == "kit":
        from pathlib import Path

        from sampling.benchmarks.device_kit import build_kit

        build_kit(Path(args.out), args.tier, Path(__file__).resolve().parents[2], int(args.limit_mib * 2**20))
        return 0
    from sampling.benchmarks.request import BenchRequest, run_bench

    options = {key: value for key, value in vars(args).items() if key not in ("suite", "out", "repeats", "threads")}
    return run_bench(BenchRequest(suite=args.suite, out=args.out, repeats=args.repeats, threads=args.threads,
                                  options=options))


if __name__ == "__main__":
    sys.exit(main())
