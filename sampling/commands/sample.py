"""qgfd-sample: samples from a checkpoint as pictures and files.

    qgfd-sample images --ckpt CKPT --num 64 --sampler ddim --steps 50 [--eta 0] --seed 0 --out grid.png
                       [--images-dir DIR] [--npz samples.npz]
    qgfd-sample images --ckpt CKPT --sampler adaptive [--rtol 0.1 --atol 0.0078] ...   (steps chosen per image)
    qgfd-sample molecules --ckpt CKPT --num 100 [--steps 500] --seed 0 --out grid.png --smiles out.smi
    qgfd-sample graphs --ckpt CKPT --num 40 [--steps 500] --seed 0 --out graphs.png --npz graphs.npz
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

from datamodules.graph_files import write_graph_npz
from models.measures.graph_statistics import is_valid
from models.measures.grids import (write_graph_grid, write_image_grid, write_images, write_molecule_grid, write_npz,
                                   write_smiles)
from models.processes.adaptive_sampler import AdaptiveSettings
from models.processes.gaussian_diffusion import SAMPLERS
from models.training.loading import load_datamodule, load_model
from qgfd_gen.checkpoints import check_file
from qgfd_gen.errors import command
from qgfd_gen.io import check_outputs
from qgfd_gen.locks import folder_lock
from sampling.distributed import Shard, launch
from sampling.progress import progress_bar
from sampling.sweep import adaptive_label

from .options import add_device_options, add_end_log_snr_option, device, positive_float, positive_int, unit_interval


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgfd-sample", description="Sample from a qgfd-gen checkpoint.")
    sub = parser.add_subparsers(dest="kind", required=True)
    images = sub.add_parser("images", help="an image grid (and optionally every image, an .npz)")
    images.add_argument("--ckpt", required=True)
    images.add_argument("--num-samples", "--num", dest="num_samples", type=positive_int, default=64)
    images.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    images.add_argument("--steps", type=positive_int, default=50, help="sampler steps (not for --sampler adaptive)")
    images.add_argument("--rtol", type=positive_float, default=AdaptiveSettings.rtol,
                        help="adaptive sampler: relative error tolerance per step")
    images.add_argument("--atol", type=positive_float, default=AdaptiveSettings.atol,
                        help="adaptive sampler: absolute error tolerance per step ([-1, 1] pixel units)")
    add_end_log_snr_option(images)
    images.add_argument("--eta", type=unit_interval, default=0.0, help="DDIM noise, 0 (deterministic) to 1")
    images.add_argument("--seed", type=int, default=0)
    images.add_argument("--out", default="grid.png")
    images.add_argument("--images-dir", default=None, help="also write every image as PNG here")
    images.add_argument("--npz", default=None, help="also write all images as uint8 [N, H, W, C] here")
    images.add_argument("--batch-size", type=positive_int, default=64)
    images.add_argument("--no-ema", action="store_true", help="sample with the raw weights, not the EMA")
    images.add_argument("--device", type=device, default="cpu")
    add_device_options(images)
    mols = sub.add_parser("molecules", help="an RDKit grid and a SMILES file (empty line = invalid)")
    mols.add_argument("--ckpt", required=True)
    mols.add_argument("--num-samples", "--num", dest="num_samples", type=positive_int, default=100)
    mols.add_argument("--steps", type=positive_int, default=None, help="sampler steps (default: every timestep)")
    mols.add_argument("--seed", type=int, default=0)
    mols.add_argument("--out", default="molecules.png")
    mols.add_argument("--smiles", default="molecules.smi")
    mols.add_argument("--per-row", type=positive_int, default=8)
    mols.add_argument("--grid-max", type=positive_int, default=64, help="at most this many molecules in the grid")
    mols.add_argument("--batch-size", type=positive_int, default=512)
    mols.add_argument("--correct", action="store_true", help="valency correction (reported apart, not validity)")
    mols.add_argument("--no-ema", action="store_true")
    mols.add_argument("--device", type=device, default="cpu")
    add_device_options(mols)
    graphs = sub.add_parser("graphs", help="a grid of graphs beside training graphs, and an .npz of adjacency matrices")
    graphs.add_argument("--ckpt", required=True)
    graphs.add_argument("--num-samples", "--num", dest="num_samples", type=positive_int, default=40)
    graphs.add_argument("--steps", type=positive_int, default=None, help="sampler steps (default: every timestep)")
    graphs.add_argument("--seed", type=int, default=0)
    graphs.add_argument("--out", default="graphs.png")
    graphs.add_argument("--npz", default="graphs.npz", help="adjacency [N, n, n] (padded) and num_nodes [N]")
    graphs.add_argument("--per-row", type=positive_int, default=8)
    graphs.add_argument("--grid-max", type=positive_int, default=24, help="at most this many graphs in the grid")
    graphs.add_argument("--batch-size", type=positive_int, default=256)
    graphs.add_argument("--no-ema", action="store_true")
    graphs.add_argument("--device", type=device, default="cpu")
    add_device_options(graphs)
    return parser


def sample_images(args: argparse.Namespace) -> None:
    check_outputs({"--out": args.out, "--npz": args.npz, "--images-dir": args.images_dir}, {"--ckpt": args.ckpt},
                  folders=("--images-dir",))
    if args.devices * args.num_nodes > 1:  # a bad checkpoint is refused here, before any process starts
        check_file(args.ckpt, "images")
    launch(_sample_images, args, args.devices, args.num_nodes, args.device, args.num_samples, args.batch_size)


def _sample_images(shard: Shard, args: argparse.Namespace) -> None:
    model = load_model(args.ckpt, "images", shard.device(args.device))
    adaptive = (AdaptiveSettings(rtol=args.rtol, atol=args.atol, end_log_snr=args.end_log_snr)
                if args.sampler == "adaptive" else None)
    label = adaptive_label(args.rtol, args.atol, args.end_log_snr) if adaptive else f"{args.sampler} {args.steps} steps"
    model.check_sampling(args.num_samples, args.sampler, args.steps, args.eta, adaptive=adaptive)  # before the bar
    started = time.perf_counter()
    with progress_bar(shard) as bar:
        task = bar.add_task(label, total=shard.share(args.num_samples, args.batch_size))
        result = model.sample(args.num_samples, sampler=args.sampler, steps=args.steps, eta=args.eta, seed=args.seed,
                              use_ema=not args.no_ema, batch_size=args.batch_size, adaptive=adaptive,
                              progress=lambda n: bar.advance(task, n), batches=shard.batches(args.num_samples, args.batch_size))
    result = shard.gather(result, started, args.batch_size)
    if not shard.is_main:
        return
    write_image_grid(result.images, args.out)
    if args.images_dir:
        with folder_lock(args.images_dir, "--images-dir"):  # one writer per folder
            write_images(result.images, args.images_dir)
    if args.npz:
        write_npz(result.images, args.npz)
    spread = (f" (min {result.evaluations_min:g}, max {result.evaluations_max:g}, {result.rejected_steps:.1f} rejected "
              f"steps per image)" if adaptive else "")
    print(f"wrote {args.out}: {args.num_samples} images, {result.network_evaluations:g} network evaluations per image{spread}, "
          f"{result.seconds:.1f} s")


def _sample_chain(shard: Shard, model, args: argparse.Namespace, **options):
    """A discrete chain's samples (molecules, graphs) behind one progress bar, gathered on the main process (None
    elsewhere); the settings checked before the bar appears."""
    model.check_sampling(args.num_samples, args.steps)
    started = time.perf_counter()
    with progress_bar(shard) as bar:
        task = bar.add_task(f"{args.steps or model.diffusion.num_timesteps} steps", total=shard.share(args.num_samples, args.batch_size))
        result = model.sample(args.num_samples, steps=args.steps, seed=args.seed, use_ema=not args.no_ema,
                              batch_size=args.batch_size, progress=lambda n: bar.advance(task, n),
                              batches=shard.batches(args.num_samples, args.batch_size), **options)
    return shard.gather(result, started, args.batch_size)


def sample_molecules(args: argparse.Namespace) -> None:
    check_outputs({"--out": args.out, "--smiles": args.smiles}, {"--ckpt": args.ckpt})
    if args.devices * args.num_nodes > 1:  # a bad checkpoint is refused here, before any process starts
        check_file(args.ckpt, "molecules")
    launch(_sample_molecules, args, args.devices, args.num_nodes, args.device, args.num_samples, args.batch_size)


def _sample_molecules(shard: Shard, args: argparse.Namespace) -> None:
    model = load_model(args.ckpt, "molecules", shard.device(args.device))
    result = _sample_chain(shard, model, args, correct=args.correct)
    if result is None:
        return
    write_smiles(result.smiles, args.smiles)
    write_molecule_grid(result.mols[: args.grid_max], args.out, per_row=args.per_row)
    valid = sum(s is not None for s in result.smiles)
    print(f"wrote {args.smiles} and {args.out}: {args.num_samples} molecules, {valid} valid "
          f"({100 * valid / args.num_samples:.1f}%{', with valency correction' if args.correct else ''}), {result.seconds:.1f} s")


def sample_graphs(args: argparse.Namespace) -> None:
    check_outputs({"--out": args.out, "--npz": args.npz}, {"--ckpt": args.ckpt})
    if args.devices * args.num_nodes > 1:  # a bad checkpoint is refused here, before any process starts
        check_file(args.ckpt, "graphs")
    launch(_sample_graphs, args, args.devices, args.num_nodes, args.device, args.num_samples, args.batch_size)


def _sample_graphs(shard: Shard, args: argparse.Namespace) -> None:
    model = load_model(args.ckpt, "graphs", shard.device(args.device))
    result = _sample_chain(shard, model, args)
    if result is None:
        return
    valid = [is_valid(g, model.benchmark) for g in result.graphs]
    datamodule = load_datamodule(args.ckpt)
    training = datamodule.graphs("train")[: args.per_row] if datamodule is not None and hasattr(datamodule, "graphs") else []
    write_graph_npz(result.graphs, args.npz)
    write_graph_grid(result.graphs[: args.grid_max], args.out, valid[: args.grid_max], training, per_row=args.per_row)
    print(f"wrote {args.npz} and {args.out}: {args.num_samples} {model.benchmark} graphs, {sum(valid)} valid "
          f"({100 * sum(valid) / args.num_samples:.1f}%), {result.seconds:.1f} s")


@command
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    {"images": sample_images, "molecules": sample_molecules, "graphs": sample_graphs}[args.kind](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
