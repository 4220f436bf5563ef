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

from models.measures.grids import write_image_grid, write_images, write_npz
from models.processes.adaptive_sampler import AdaptiveSettings
from models.processes.gaussian_diffusion import SAMPLERS
from models.training.loading import load_datamodule, load_model
from qgfd_gen.checkpoints import check_file
from qgfd_gen.errors import command
from qgfd_gen.io import check_outputs
from qgfd_gen.locks import folder_lock
from sampling.distributed import Shard, launch
from sampling.kept_samples import write_graph_samples, write_molecule_samples
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
    mols = _chain_parser(sub, "molecules", "an RDKit grid and a SMILES file (empty line = invalid)", num=100,
                         out="molecules.png", grid_max=64, batch_size=512)
    mols.add_argument("--smiles", default="molecules.smi")
    mols.add_argument("--correct", action="store_true", help="valency correction (reported apart, not validity)")
    graphs = _chain_parser(sub, "graphs", "a grid of graphs beside training graphs, and an .npz of adjacency matrices",
                           num=40, out="graphs.png", grid_max=24, batch_size=256)
    graphs.add_argument("--npz", default="graphs.npz", help="adjacency [N, n, n] (padded) and num_nodes [N]")
    return parser


def _chain_parser(sub: argparse._SubParsersAction, name: str, help: str, num: int, out: str, grid_max: int,
                  batch_size: int) -> argparse.ArgumentParser:
    """A discrete chain's subcommand (molecules, graphs) with the options _sample_chain reads and a grid's."""
    parser = sub.add_parser(name, help=help)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--num-samples", "--num", dest="num_samples", type=positive_int, default=num)
    parser.add_argument("--steps", type=positive_int, default=None, help="sampler steps (default: every timestep)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=out)
    parser.add_argument("--per-row", type=positive_int, default=8)
    parser.add_argument("--grid-max", type=positive_int, default=grid_max, help=f"at most this many {name} in the grid")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size)
    parser.add_argument("--no-ema", action="store_true")
    parser.add_argument("--device", type=device, default="cpu")
    add_device_options(parser)
    return parser


def _launch(args: argparse.Namespace, kind: str, worker, outputs: dict[str, Optional[str]],
            folders: tuple[str, ...] = ()) -> None:
    """Outputs checked against the checkpoint (none may overwrite it), the checkpoint's kind checked before several
    processes start, then `worker(shard, args)` on every process."""
    check_outputs(outputs, {"--ckpt": args.ckpt}, folders=folders)
    if args.devices * args.num_nodes > 1:  # a bad checkpoint is refused here, before any process starts
        check_file(args.ckpt, kind)
    launch(worker, args, args.devices, args.num_nodes, args.device, args.num_samples, args.batch_size)


def sample_images(args: argparse.Namespace) -> None:
    _launch(args, "images", _sample_images, {"--out": args.out, "--npz": args.npz, "--images-dir": args.images_dir},
            folders=("--images-dir",))


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
    _launch(args, "molecules", _sample_molecules, {"--out": args.out, "--smiles": args.smiles})


def _sample_molecules(shard: Shard, args: argparse.Namespace) -> None:
    model = load_model(args.ckpt, "molecules", shard.device(args.device))
    result = _sample_chain(shard, model, args, correct=args.correct)
    if result is None:
        return
    write_molecule_samples(result.smiles, result.mols, args.smiles, args.out, args.grid_max, args.per_row)
    valid = sum(s is not None for s in result.smiles)
    print(f"wrote {args.smiles} and {args.out}: {args.num_samples} molecules, {valid} valid "
          f"({100 * valid / args.num_samples:.1f}%{', with valency correction' if args.correct else ''}), {result.seconds:.1f} s")


def sample_graphs(args: argparse.Namespace) -> None:
    _launch(args, "graphs", _sample_graphs, {"--out": args.out, "--npz": args.npz})


def _sample_graphs(shard: Shard, args: argparse.Namespace) -> None:
    model = load_model(args.ckpt, "graphs", shard.device(args.device))
    result = _sample_chain(shard, model, args)
    if result is None:
        return
    datamodule = load_datamodule(args.ckpt)
    training = datamodule.graphs("train")[: args.per_row] if datamodule is not None and hasattr(datamodule, "graphs") else []
    valid = write_graph_samples(result.graphs, args.npz, args.out, model.benchmark, training, args.grid_max, args.per_row)
    print(f"wrote {args.npz} and {args.out}: {args.num_samples} {model.benchmark} graphs, {sum(valid)} valid "
          f"({100 * sum(valid) / args.num_samples:.1f}%), {result.seconds:.1f} s")


@command
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    {"images": sample_images, "molecules": sample_molecules, "graphs": sample_graphs}[args.kind](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
