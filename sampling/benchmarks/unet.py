"""The `unet` suite of qgfd-bench: one training step (forward, backward, optimiser) of the CIFAR-10 DDPM
U-Net (`UNetConfig`'s defaults, QGFD's defaults) with QGFD attention against the same U-Net with vanilla
attention, same weights and batch."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

import torch

from models import ImageDiffusion, UNetConfig
from qgfd_gen.attention import QGFDConfig
from qgfd_gen.memory import MemoryTracker

from .timing import interleaved_median_ms


def unet_suite(batch: int, repeats: int, progress: Callable[[str], None], unet: Optional[UNetConfig] = None,
               qgfd: Optional[QGFDConfig] = None) -> list[dict]:
    unet, qgfd = unet or UNetConfig(), qgfd or QGFDConfig()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, unet.in_channels, unet.sample_size, unet.sample_size, generator=generator) * 2 - 1
    noise = torch.randn(images.shape, generator=generator)
    timesteps = torch.randint(0, 1000, (batch,), generator=generator)
    models, steps, forwards, state = {}, {}, {}, None
    for attention in ("vanilla", "qgfd"):
        torch.manual_seed(0)
        model = ImageDiffusion(unet=replace(unet, attention=attention), qgfd=qgfd)
        state = state or model.state_dict()
        model.load_state_dict(state)
        models[attention] = model
        steps[attention], forwards[attention] = _step_and_forward(model, images, timesteps, noise)
    progress(f"unet vanilla and qgfd in turn, batch={batch}")
    step_ms = interleaved_median_ms(steps, repeats)
    forward_ms = interleaved_median_ms(forwards, repeats)
    rows = []
    for attention, model in models.items():
        with MemoryTracker() as tracker:
            steps[attention]()
        rows.append({
            "suite": "unet", "attention": attention, "batch": batch, "image_size": unet.sample_size,
            "params_m": sum(p.numel() for p in model.unet.parameters()) / 1e6,
            "qgfd": qgfd.to_dict() if attention == "qgfd" else None,
            "train_step_ms": step_ms[attention], "forward_ms": forward_ms[attention], "peak_mb": tracker.peak_bytes / 2**20,
        })
    vanilla = rows[0]
    for row in rows:
        row["train_step_ratio_vs_vanilla"] = row["train_step_ms"] / vanilla["train_step_ms"]
        row["peak_ratio_vs_vanilla"] = row["peak_mb"] / vanilla["peak_mb"]
    return rows


def _step_and_forward(model: ImageDiffusion, images, timesteps, noise) -> tuple[Callable[[], None], Callable[[], None]]:
    optimizer = torch.optim.AdamW(model.unet.parameters(), lr=1e-6)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.diffusion_loss(images, timesteps, noise).backward()
        optimizer.step()

    def forward() -> None:
        with torch.no_grad():
            model(images, timesteps)

    return train_step, forward


def unet_ratios(rows: list[dict]) -> dict[str, float]:
    qgfd = next(r for r in rows if r["attention"] == "qgfd")
    return {"unet_step_qgfd_vs_vanilla": qgfd["train_step_ratio_vs_vanilla"],
            "unet_peak_memory_qgfd_vs_vanilla": qgfd["peak_ratio_vs_vanilla"]}


def print_unet_table(rows: list[dict]) -> None:
    print(f"{'attention':10}{'batch':>6}{'step ms':>10}{'x':>6}{'fwd ms':>9}{'peak MB':>9}{'x':>6}")
    for r in rows:
        print(f"{r['attention']:10}{r['batch']:>6}{r['train_step_ms']:>10.1f}{r['train_step_ratio_vs_vanilla']:>6.2f}"
              f"{r['forward_ms']:>9.1f}{r['peak_mb']:>9.1f}{r['peak_ratio_vs_vanilla']:>6.2f}")
