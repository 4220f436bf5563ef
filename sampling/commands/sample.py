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
from typing import Optional

from qgfd_gen.errors import command

from .options import add_device_options, add_end_log_snr_option, device, positive_float, positive_int, unit_interval


def sampler_name(text: str) -> str:
    from models.processes.gaussian_diffusion import SAMPLERS

    if text not in SAMPLERS:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(SAMPLERS)})")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgfd-sample", description="Sample from a qgfd-gen checkpoint.")
    sub = parser.add_subparsers(dest="kind", required=True)
    images = sub.add_parser("images", help="an image grid (and optionally every image, an .npz)")
    images.add_argument("--ckpt", required=True)
    images.add_argument("--num-samples", "--num", dest="num_samples", type=positive_int, default=64)
    images.add_argument("--sampler", type=sampler_name, default="ddim",
                        help="ddpm, ddim, dpm++, dpm++-unclipped or adaptive")
    images.add_argument("--steps", type=positive_int, default=50, help="sampler steps (not for --sampler adaptive)")
    images.add_argument("--rtol", type=positive_float, default=None,
                        help="adaptive sampler: relative error tolerance per step (default: AdaptiveSettings.rtol, 0.1)")
    images.add_argument("--atol", type=positive_float, default=None,
                        help="adaptive sampler: absolute error tolerance per step ([-1, 1] pixel units; default: "
                             "AdaptiveSettings.atol, 0.0078)")
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


@command
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from models.processes.adaptive_sampler import AdaptiveSettings
    from sampling.sample_files import sample_graphs, sample_images, sample_molecules

    if args.kind == "images":
        args.rtol = AdaptiveSettings.rtol if args.rtol is None else args.rtol
        args.atol = AdaptiveSettings.atol if args.atol is None else args.atol
    {"images": sample_images, "molecules": sample_molecules, "graphs": sample_graphs}[args.kind](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
