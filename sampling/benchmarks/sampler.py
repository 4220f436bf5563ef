"""The `sampler` suite of qgfd-bench: the workbench's samplers against diffusers' own loop on the same U-Net.

For each fixed-step sampler the same EMA U-Net, scheduler settings, initial noise and number of samples run
through `ImageDiffusion.sample` and through diffusers (`DDIMPipeline` for DDIM; for DPM-Solver++ the
scheduler loop diffusers' docs show, as no stock pipeline takes an unconditional U-Net with it), so the
ratio is what the workbench's own bookkeeping (early exit, statistics, per-sample counting) costs. The
adaptive sampler is timed too, with its evaluations, to set its cost against the fixed grids'. The default
U-Net is the digits config's (16x16, QGFD at 8x8); `--ckpt` benchmarks a trained image model instead.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from diffusers import DDIMPipeline

from models import ImageDiffusion, UNetConfig
from qgfd_gen.attention import QGFDConfig

from .timing import interleaved_median_ms, median_ms

DIGITS_UNET = UNetConfig(sample_size=16, in_channels=1, block_out_channels=[32, 64, 64],
                         down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
                         up_block_types=["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"], layers_per_block=1,
                         attention_head_dim=32, norm_num_groups=8, dropout=0.0)
DIGITS_QGFD = QGFDConfig(alpha=0.5, iterations=4, transition="grid")


def diffusers_loop(model: ImageDiffusion, sampler: str, num: int, steps: int, seed: int) -> torch.Tensor:
    """diffusers' sampling of the same U-Net and schedule: its pipeline (DDIM) or its scheduler loop; images
    in [0, 1], NCHW."""
    unet, scheduler = model.ema.module, model.diffusion.sampler_scheduler(sampler, steps)
    if sampler == "ddim":
        pipeline = DDIMPipeline(unet=unet, scheduler=scheduler)
        pipeline.set_progress_bar_config(disable=True)  # the workbench's side draws none either
        out = pipeline(batch_size=num, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps,
                       output_type="np")
        return torch.from_numpy(out.images).permute(0, 3, 1, 2)
    x = torch.randn((num, *model.image_shape), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x).prev_sample
    return x.clamp(-1, 1).add(1).div(2)


def sampler_suite(num: int, steps: int, repeats: int, progress: Callable[[str], None],
                  model: Optional[ImageDiffusion] = None) -> list[dict]:
    if model is None:
        torch.manual_seed(0)
        model = ImageDiffusion(unet=DIGITS_UNET, qgfd=DIGITS_QGFD)
    model.eval()
    rows = []
    for sampler in ("ddim", "dpm++"):
        progress(f"sampler {sampler}: {num} samples, {steps} steps")
        timed = interleaved_median_ms({
            "ours": lambda: model.sample(num, sampler=sampler, steps=steps, seed=0, batch_size=num),
            "theirs": lambda: diffusers_loop(model, sampler, num, steps, seed=0)}, repeats)
        ours, theirs = timed["ours"], timed["theirs"]
        same = (model.sample(num, sampler=sampler, steps=steps, seed=0, batch_size=num).images
                - diffusers_loop(model, sampler, num, steps, seed=0)).abs().max()
        rows.append({"sampler": sampler, "samples": num, "steps": steps, "workbench_ms": ours, "diffusers_ms": theirs,
                     "ratio": ours / theirs, "network_evaluations": steps, "max_image_difference": float(same)})
    progress(f"sampler adaptive: {num} samples")
    result = model.sample(num, sampler="adaptive", seed=0, batch_size=num)
    adaptive_ms = median_ms(lambda: model.sample(num, sampler="adaptive", seed=0, batch_size=num), repeats)
    rows.append({"sampler": "adaptive", "samples": num, "steps": None, "workbench_ms": adaptive_ms, "diffusers_ms": None,
                 "ratio": None, "network_evaluations": result.network_evaluations})
    return rows


def sampler_ratios(rows: list[dict]) -> dict[str, float]:
    return {f"sampler_vs_diffusers_{r['sampler']}": r["ratio"] for r in rows if r["ratio"] is not None}


def print_sampler_table(rows: list[dict]) -> None:
    print(f"{'sampler':10}{'samples':>8}{'NFE':>7}{'workbench ms':>14}{'diffusers ms':>14}{'x':>7}")
    for r in rows:
        theirs = f"{r['diffusers_ms']:.1f}" if r["diffusers_ms"] is not None else "-"
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
        print(f"{r['sampler']:10}{r['samples']:>8}{r['network_evaluations']:>7.1f}{r['workbench_ms']:>14.1f}{theirs:>14}{ratio:>7}")
    for name, value in sorted(sampler_ratios(rows).items()):
        print(f"{name}: {value:.3f}")
