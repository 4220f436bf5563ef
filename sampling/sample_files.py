"""Sampling from a checkpoint into pictures and files, on one process or several (`qgfd-sample`'s engine): image
grids, PNG folders and uint8 .npz files; molecule grids and SMILES files; graph grids and adjacency .npz files.
Each entry point takes the parsed options of its `qgfd-sample` subcommand."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

from models.measures.grids import write_image_grid, write_images, write_npz
from models.processes.adaptive_sampler import AdaptiveSettings
from models.training.loading import load_datamodule, load_model
from qgfd_gen.checkpoints import check_file
from qgfd_gen.errors import UsageError
from qgfd_gen.io import check_outputs
from qgfd_gen.locks import folder_lock
from sampling.distributed import Shard, launch
from sampling.kept_samples import write_graph_samples, write_molecule_samples
from sampling.progress import progress_bar
from sampling.sweep import adaptive_label


def refuse_nonempty_folder(folder: str, name: str) -> None:
    """A folder of images from two runs would mix (a second run with fewer images leaves the first run's extra ones
    beside its own): a folder that already holds files is refused, before any work; nothing is deleted."""
    path = Path(folder)
    if path.is_dir() and any(path.iterdir()):
        count = sum(1 for _ in path.iterdir())
        raise UsageError(f"{name} {folder!r} already holds {count} entries; give a new or empty folder (this run's "
                         "images would mix with what is there; nothing was removed)")


def _launch(args: argparse.Namespace, kind: str, worker, outputs: dict[str, Optional[str]],
            folders: tuple[str, ...] = ()) -> None:
    """Outputs checked against the checkpoint (none may overwrite it), the checkpoint's kind checked before several
    processes start, then `worker(shard, args)` on every process."""
    check_outputs(outputs, {"--ckpt": args.ckpt}, folders=folders)
    if args.devices * args.num_nodes > 1:  # a bad checkpoint is refused here, before any process starts
        check_file(args.ckpt, kind)
    launch(worker, args, args.devices, args.num_nodes, args.device, args.num_samples, args.batch_size)


def sample_images(args: argparse.Namespace) -> None:
    if args.images_dir:
        refuse_nonempty_folder(args.images_dir, "--images-dir")
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
