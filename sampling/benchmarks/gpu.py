"""qgfd-bench gpu: are the published-scale configs ready for an accelerator? In about ten minutes on one
GPU, for each config with QGFD and with vanilla attention (molecules: alpha 0), a few hundred training steps
through Lightning in the precision the config would pick there (bf16 or fp16 mixed), with steps per second, peak
device memory, the QGFD / vanilla step-time ratio and whether the loss stays finite and falls; then CIFAR-10 images
from DDIM at 50 steps (images per second) and their FID / KID when the Inception and a reference are here.

Training reads each config's own data set where it is on the machine (its data module with downloads off; molecule
sets capped at MAX_MOLECULES per split, so encoding stays within seconds), so "loss falling" is measured on real
data. Where the set is absent (a GPU machine may hold only the repository) the part uses random tensors of the
config's shapes (image size and channels, batch size; molecules of the vocabulary's largest size) and its row says
so and why: speed and memory do not depend on the values. Nothing downloads. Every part has a time budget; a part that runs over it is
cut short and reported as such, so one slow part never costs the whole check. `--tiny` runs the same code on the
CPU with tiny widths and a few steps, which is how the tests prove it before a GPU sees it.
"""

from __future__ import annotations

import copy
import importlib
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Optional

import lightning as L
import torch
import yaml

from qgfd_gen.errors import QGFDError
from qgfd_gen.memory import MemoryTracker

from .gpu_inputs import RANDOM_INPUTS, training_inputs

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
GPU_CONFIGS = ("cifar", "celeba", "qm9", "zinc", "moses", "planar", "tree")  # cifar-vanilla is cifar's vanilla arm
TOTAL_TRAIN_SECONDS = 420  # the training parts' share of the ten minutes (sampling and FID take the rest)
ARMS = ("qgfd", "vanilla")



def load_config(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def model_arguments(config: dict[str, Any], arm: str, tiny: bool) -> tuple[str, dict[str, Any]]:
    """The config's model class and init arguments for one arm; tiny widths (same block layout) with `tiny`."""
    model = copy.deepcopy(config["model"])
    args = model.get("init_args") or {}
    if "unet" in args:
        unet = args["unet"]
        if arm == "vanilla":
            unet["attention"] = "vanilla"
        if tiny:
            levels = len(unet["block_out_channels"])
            unet.update(block_out_channels=[8] * levels, norm_num_groups=4, layers_per_block=1, attention_head_dim=8,
                        sample_size=2 ** levels)  # the same downsamplings, on the smallest image they allow
    else:
        if arm == "vanilla":
            args.setdefault("qgfd", {})["alpha"] = 0.0
        if tiny:
            args["network"] = {**args.get("network", {}), "node_dim": 16, "edge_dim": 8, "layers": 2, "heads": 2}
        args.update(val_samples=0)
    return model["class_path"], args


def build_model(config: dict[str, Any], arm: str, tiny: bool) -> L.LightningModule:
    class_path, args = model_arguments(config, arm, tiny)
    module, _, name = class_path.rpartition(".")
    torch.manual_seed(0)
    return getattr(importlib.import_module(module), name)(**args)


class StepRecorder(L.Callback):
    """Each step's loss and wall time (the device synchronised); stops the fit when the part's budget is spent."""

    def __init__(self, budget_seconds: float):
        self.budget, self.losses, self.seconds, self.cut_short = budget_seconds, [], [], False
        self._start = self._step_start = 0.0

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._sync(pl_module)
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._sync(pl_module)
        self.seconds.append(time.perf_counter() - self._step_start)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss.detach()))
        if time.perf_counter() - self._start > self.budget and trainer.global_step < trainer.max_steps:
            self.cut_short, trainer.should_stop = True, True


def precision_for(device: str) -> str:
    """What `lightning fit` picks on a GPU (sampling.commands.lightning.default_precision); on the CPU (--tiny)
    bf16 mixed precision, so that the tiny run goes through autocast as a GPU run does."""
    from models.training.cli import default_precision

    return default_precision() if device == "cuda" else "bf16-mixed"


def train_part(name: str, arm: str, steps: int, budget: float, device: str, tiny: bool,
               data_dir: Optional[str] = None) -> tuple[dict[str, Any], Any]:
    """A config's arm trained for `steps` steps on its data set (random inputs where it is absent); its row and
    the trained model."""
    config = load_config(name)
    model = build_model(config, arm, tiny)
    batch = 2 if tiny else int(config["data"]["init_args"].get("batch_size", 64))
    fit_inputs, inputs, data_seconds = training_inputs(config, model, batch, min(steps, 8), tiny, data_dir)
    recorder = StepRecorder(budget)
    precision = precision_for(device)
    trainer = L.Trainer(max_steps=steps, max_epochs=-1, accelerator=device, devices=1, precision=precision,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[recorder],
                        gradient_clip_val=config.get("trainer", {}).get("gradient_clip_val"))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        trainer.fit(model, **fit_inputs)
        peak, memory_kind = torch.cuda.max_memory_allocated() / 2**20, "device peak (torch.cuda.max_memory_allocated)"
    else:
        with MemoryTracker() as tracker:
            trainer.fit(model, **fit_inputs)
        peak, memory_kind = tracker.peak_bytes / 2**20, "peak of tensors created during the part (counted)"
    times = recorder.seconds[2:] if len(recorder.seconds) > 4 else recorder.seconds  # warm-up steps left out
    losses = recorder.losses
    quarter = max(1, len(losses) // 4)
    row = {"part": "train", "config": name, "arm": arm, "precision": precision, "batch": batch,
           "parameters": sum(p.numel() for p in model.network.parameters()), "steps_asked": steps,
           "steps_done": len(losses), "cut_short": recorder.cut_short, "budget_seconds": budget,
           "seconds": round(sum(recorder.seconds), 3),
           "steps_per_second": 1 / statistics.median(times) if times else None, "peak_memory_mb": peak,
           "memory": memory_kind, "loss_first": statistics.fmean(losses[:quarter]) if losses else None,
           "loss_last": statistics.fmean(losses[-quarter:]) if losses else None,
           "losses_finite": all(map(_finite, losses)) and bool(losses), "inputs": inputs,
           "data_seconds": round(data_seconds, 3)}
    row["loss_falling"] = bool(losses) and row["losses_finite"] and row["loss_last"] < row["loss_first"]
    return row, model


def sample_part(model, num: int, steps: int, budget: float, batch: int) -> tuple[dict[str, Any], Optional[torch.Tensor]]:
    """DDIM images from the trained CIFAR-10 model, batch by batch until `num` or the budget; images per second."""
    start, images = time.perf_counter(), []
    cut_short = False
    for lo in range(0, num, batch):
        images.append(model.sample(num, sampler="ddim", steps=steps, seed=0, batch_size=batch, batches=[lo]).images)
        if time.perf_counter() - start > budget and lo + batch < num:
            cut_short = True
            break
    seconds = time.perf_counter() - start
    done = torch.cat(images)
    return ({"part": "sample", "config": "cifar", "arm": "qgfd", "sampler": "ddim", "sampler_steps": steps,
             "images_asked": num, "images_done": len(done), "cut_short": cut_short, "budget_seconds": budget,
             "seconds": round(seconds, 3), "images_per_second": len(done) / seconds}, done)


def fid_part(images: torch.Tensor, reference: Optional[str], budget: float) -> dict[str, Any]:
    """FID / KID of the sampled images against the reference (a folder, .npz or statistics file); skipped, with
    the reason, when the Inception or the reference is not here."""
    from datamodules.image_sets import is_statistics_file, open_image_set
    from models.measures.image_metrics import ImageQuality
    from sampling.evaluate_images import KID_SUBSET_SIZE
    from sampling.score_image_files import load_reference

    row: dict[str, Any] = {"part": "fid", "config": "cifar", "samples": len(images)}
    if reference is None:
        return {**row, "skipped": "no --reference given (a folder or .npz of CIFAR-10 images, or their statistics)"}
    start = time.perf_counter()
    try:
        statistics_file = is_statistics_file(reference)
        reference_set = None if statistics_file else open_image_set(reference, "--reference")
        subset = min(KID_SUBSET_SIZE, len(images), len(reference_set) if reference_set is not None else KID_SUBSET_SIZE)
        with_kid = not (statistics_file and Path(reference).suffix == ".npz")  # mu / sigma: FID only
        quality = ImageQuality(None, want_fid=True, want_is=False, want_kid=with_kid, kid_subset_size=subset)
        load_reference(quality, reference, reference_set, 100)
    except QGFDError as error:
        return {**row, "skipped": str(error)}
    for lo in range(0, len(images), 100):
        quality.update_fake(images[lo: lo + 100])
    scores = quality.compute()
    seconds = time.perf_counter() - start
    return {**row, **scores, "reference_images": quality.real_count, "fid_network": quality.network,
            "fid_label": f"FID@{len(images)}", "seconds": round(seconds, 3), "over_budget": seconds > budget}


def write_samples_npz(path: str, images: torch.Tensor) -> str:
    """The sampled images as uint8 [N, H, W, C] under `images` (an .npz qgfd-eval images --samples reads), written
    whole: they travel back from a GPU machine to be scored with the FID network that cannot travel there."""
    import numpy as np

    from qgfd_gen.io import atomic_path

    pixels = (images.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, images=pixels)
    return path


def gpu_suite(configs: tuple[str, ...], steps: int, train_budget: float, num_images: int, sample_steps: int,
              sample_budget: float, reference: Optional[str], device: str, tiny: bool,
              progress: Callable[[str], None], data_dir: Optional[str] = None, samples_npz: Optional[str] = None,
              finished: Callable[[list[dict[str, Any]]], None] = lambda rows: None
              ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every part in turn; `finished(rows)` after each, so that a run cut short (by a device's time limit) leaves
    the rows of the parts that finished."""
    rows, trained = [], {}
    for name in configs:
        for arm in ARMS:
            progress(f"train {name} {arm} ({steps} steps, budget {train_budget:g} s)")
            try:
                row, model = train_part(name, arm, steps, train_budget, device, tiny, data_dir)
            except Exception as error:  # a part that fails is reported, and the others still run
                row, model = {"part": "train", "config": name, "arm": arm, "failed": f"{type(error).__name__}: {error}"}, None
            rows.append(row)
            finished(rows)
            if model is not None and name == "cifar" and arm == "qgfd":
                trained["cifar"] = model
    if "cifar" in trained:
        progress(f"sample {num_images} CIFAR-10 images, DDIM {sample_steps} steps")
        sample_row, images = sample_part(trained["cifar"], num_images, sample_steps, sample_budget,
                                         batch=min(num_images, 8 if tiny else 250))
        if samples_npz:
            sample_row["samples_npz"] = write_samples_npz(samples_npz, images)
        rows.append(sample_row)
        finished(rows)
        progress("FID / KID")
        rows.append(fid_part(images, reference, sample_budget))
    return rows, step_ratios(rows)


def step_ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per config: QGFD's time per step over vanilla's (`<config>_qgfd_vs_vanilla_step`)."""
    speed = {(r["config"], r["arm"]): r.get("steps_per_second") for r in rows if r.get("part") == "train"}
    return {f"{name}_qgfd_vs_vanilla_step": speed[name, "vanilla"] / speed[name, "qgfd"]
            for name in dict.fromkeys(c for c, _ in speed) if speed.get((name, "qgfd")) and speed.get((name, "vanilla"))}


def print_gpu_table(rows: list[dict[str, Any]], ratios: dict[str, float]) -> None:
    print(f"{'config':8}{'arm':9}{'prec':>10}{'steps':>8}{'steps/s':>9}{'peak MB':>10}{'loss':>17}  note")
    for r in rows:
        if r["part"] != "train":
            continue
        if "failed" in r:
            print(f"{r['config']:8}{r['arm']:9}  FAILED {r['failed']}")
            continue
        loss = f"{r['loss_first']:.3f}->{r['loss_last']:.3f}" if r["losses_finite"] else "non-finite"
        note = (("cut short; " if r["cut_short"] else "") + ("falling" if r["loss_falling"] else "NOT falling")
                + ("; random inputs" if r["inputs"].startswith(RANDOM_INPUTS) else "; real data"))
        print(f"{r['config']:8}{r['arm']:9}{r['precision']:>10}{r['steps_done']:>8}{r['steps_per_second']:>9.2f}"
              f"{r['peak_memory_mb']:>10.1f}{loss:>17}  {note}")
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")
    for r in rows:
        if r["part"] == "sample":
            print(f"sampling: {r['images_done']} images in {r['seconds']:.1f} s, {r['images_per_second']:.2f} images/s"
                  + (" (cut short)" if r["cut_short"] else ""))
        if r["part"] == "fid":
            print(f"FID: {r['skipped']}" if "skipped" in r else
                  f"{r['fid_label']} {r['fid']:.2f}, KID {r.get('kid', float('nan')):.4f} ({r['fid_network']})")


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")
