"""DDPM training of a U-Net whose attention may be QGFD, and sampling with DDPM / DDIM / DPM-Solver++.

What is trained: a diffusers UNet2DModel predicting the noise (or v) of noised images. The noise schedule
and every formula on it belong to `GaussianDiffusion`; this module keeps the loss, the optimiser, the EMA
(saved in checkpoints, and what sampling uses by default) and logging.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from models.networks.unet import UNetConfig, build_unet
from models.processes.adaptive_sampler import AdaptiveSampler, AdaptiveSettings
from models.processes.gaussian_diffusion import GaussianDiffusion, NoiseSchedule
from models.processes.samples import NonFiniteSamples, SampleSet
from qgfd_gen.attention import QGFDConfig

from .base import DiffusionModule
from .optimization import OptimizerConfig


@dataclass
class SampleResult(SampleSet):
    """Images in [0, 1] and what producing them cost (the fields of SampleSet)."""

    images: Tensor  # [num, C, H, W]


class ImageDiffusion(DiffusionModule):
    """DDPM on images: a diffusers U-Net whose attention is QGFD or plain, trained on the noise (or v) target.

    Validation measures the denoising loss at fixed timesteps with fixed noise, so runs compare step by step;
    `lightning test` measures that loss on the test split and NLL in bits/dim.

    Args:
        unet: the architecture (`UNetConfig`; defaults: DDPM's CIFAR-10 U-Net).
        qgfd: QGFD's settings (`QGFDConfig`), used where `unet.attention` is ``qgfd``.
        schedule: the noise schedule (`NoiseSchedule`).
        optimizer: AdamW, warm-up, gradient clipping and EMA (`OptimizerConfig`).
        val_timesteps: timesteps of the validation loss.
        val_seed: the seed of the validation noise.
        test_nll_timesteps: timesteps of the test NLL (all of them when None).

    Example:
        >>> model = ImageDiffusion(unet={"sample_size": 8, "in_channels": 1, "block_out_channels": [16, 32],
        ...                              "down_block_types": ["AttnDownBlock2D", "DownBlock2D"],
        ...                              "up_block_types": ["UpBlock2D", "AttnUpBlock2D"], "layers_per_block": 1,
        ...                              "attention_head_dim": 8, "norm_num_groups": 8, "attention": "qgfd"},
        ...                        schedule={"num_train_timesteps": 20})
        >>> model.sample(2, sampler="ddim", steps=3, seed=0).images.shape
        torch.Size([2, 1, 8, 8])
    """

    kind = "images"

    def __init__(self, unet: Optional[UNetConfig] = None, qgfd: Optional[QGFDConfig] = None,
                 schedule: Optional[NoiseSchedule] = None, optimizer: Optional[OptimizerConfig] = None,
                 val_timesteps: int = 10, val_seed: int = 1234, test_nll_timesteps: Optional[int] = 100):
        super().__init__()
        self.save_hyperparameters()
        unet, qgfd = UNetConfig.coerce(unet), QGFDConfig.coerce(qgfd)
        schedule, optimizer = NoiseSchedule.coerce(schedule), OptimizerConfig.coerce(optimizer)
        self.plain_hyperparameters(unet=unet, qgfd=qgfd, schedule=schedule, optimizer=optimizer)
        self.unet_config, self.qgfd_config = unet, qgfd
        self.unet = build_unet(unet, qgfd)
        self.build_training(self.unet, optimizer)
        self.diffusion = GaussianDiffusion(schedule)

    @property
    def network(self) -> nn.Module:
        return self.unet

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.unet_config.in_channels, self.unet_config.sample_size, self.unet_config.sample_size)

    def forward(self, noisy: Tensor, timesteps: Tensor, use_ema: bool = False) -> Tensor:
        return self.sampling_network(use_ema)(noisy, timesteps).sample

    # ------------------------------------------------------------------ training
    def diffusion_loss(self, images: Tensor, timesteps: Tensor, noise: Tensor) -> Tensor:
        return self.diffusion.loss(self, images, timesteps, noise)

    @torch.no_grad()
    def collapse_states(self, batch, seed: int = 0) -> tuple[list[Tensor], None, list[Tensor]]:
        """(token states entering the U-Net's first attention layer and leaving each, no mask, each one's pixel
        grid) on the batch noised at timesteps spread over the chain, noise fixed by `seed` (models.CollapseMonitor)."""
        from .collapse import attention_states

        images = _images_of(batch)
        noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)).to(images)
        steps = torch.linspace(0, self.diffusion.num_timesteps - 1, len(images)).round().long().to(images.device)
        states, grids = attention_states(self.unet, lambda: self(self.diffusion.add_noise(images, noise, steps), steps))
        return states, None, grids

    def training_step(self, batch, batch_idx: int) -> Tensor:
        images = _images_of(batch)
        noise = torch.randn_like(images)
        timesteps = torch.randint(0, self.diffusion.num_timesteps, (images.shape[0],), device=images.device)
        loss = self.diffusion_loss(images, timesteps, noise)
        self.log("train/loss", loss, prog_bar=True, batch_size=images.shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> Tensor:
        images = _images_of(batch)
        loss = self.fixed_noise_loss(images, batch_idx)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=images.shape[0])
        return loss

    def test_step(self, batch, batch_idx: int) -> Tensor:
        images = _images_of(batch)
        loss = self.fixed_noise_loss(images, batch_idx)
        wanted = self.hparams.test_nll_timesteps  # at least as many as the chain has: all of them
        timesteps = None if wanted is None or wanted >= self.diffusion.num_timesteps - 1 else wanted
        nll = self.nll_bits_per_dim(images, timesteps=timesteps, seed=batch_idx).mean()
        self.log_dict({"test/loss": loss, "test/nll_bpd": nll}, sync_dist=True, batch_size=images.shape[0])
        return loss

    def fixed_noise_loss(self, images: Tensor, batch_idx: int) -> Tensor:
        """Denoising loss at fixed timesteps with noise fixed by (val_seed, batch index), so that runs and
        checkpoints compare on the same numbers."""
        generator = torch.Generator().manual_seed(self.hparams.val_seed + batch_idx)
        fixed = torch.linspace(0, self.diffusion.num_timesteps - 1, self.hparams.val_timesteps).round().long()
        losses = []
        for t in fixed.tolist():
            noise = torch.randn(images.shape, generator=generator).to(images)
            timesteps = torch.full((images.shape[0],), t, device=images.device, dtype=torch.long)
            losses.append(self.diffusion_loss(images, timesteps, noise))
        return torch.stack(losses).mean()

    # ------------------------------------------------------------------ sampling and likelihood
    @torch.no_grad()
    def sample(self, num: int, sampler: str = "ddim", steps: Optional[int] = 50, eta: float = 0.0, seed: int = 0,
               use_ema: bool = True, batch_size: int = 64, exit_levels: Optional[float] = None,
               adaptive: Optional[AdaptiveSettings] = None, progress: Optional[Callable[[int], None]] = None,
               batches: Optional[Sequence[int]] = None) -> SampleResult:
        """`num` images in [0, 1]. The same seed gives the same images whatever the batch size (the initial
        noise is one stream for all samples). sampler 'adaptive' chooses its own steps per sample (`adaptive`
        holds rtol and atol; `steps` and `exit_levels` do not apply); exit_levels: see `GaussianDiffusion.reverse`.
        batches: run only the batches starting at these sample indices (multiples of batch_size), as one
        process of several does; the images are those a single process gives for the same indices."""
        self.check_sampling(num, sampler, steps, eta, exit_levels, adaptive)
        was_training, start = self.training, time.perf_counter()
        self.eval()
        net, iterations = self.counting_network(use_ema)

        def denoise(x: Tensor, timesteps: Tensor) -> Tensor:
            return net(x, timesteps).sample

        outputs, evaluations, rejected = [], [], []
        wanted = None if batches is None else set(batches)
        for lo, noise in initial_noise(seed, num, batch_size, self.image_shape):
            if wanted is not None and lo not in wanted:
                continue
            generator = torch.Generator().manual_seed(seed * 100_003 + lo)
            result = self.diffusion.reverse(denoise, noise.to(self.device), sampler, steps, eta, generator, exit_levels,
                                            adaptive)
            outputs.append(result.samples.cpu())
            evaluations.append(result.evaluations)
            rejected.append(result.rejected)
            if progress:
                progress(result.samples.shape[0])
        self.train(was_training)
        images = torch.cat(outputs)
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        if bad:
            raise NonFiniteSamples(f"{bad} of {len(images)} samples came out non-finite (sampler={sampler}, steps={steps}, eta={eta}, "
                             f"exit_levels={exit_levels}); the model or these settings diverge, nothing is kept")
        images = images.clamp(-1, 1).add(1).div(2)
        qgfd_iterations = sum(iterations) / len(iterations) if iterations else None
        used, rejected_steps = torch.cat(evaluations), torch.cat(rejected)
        return SampleResult(evaluations=used, rejected=rejected_steps, qgfd_iterations=qgfd_iterations,
                            seconds=time.perf_counter() - start, images=images)

    def check_sampling(self, num: int, sampler: str = "ddim", steps: Optional[int] = 50, eta: float = 0.0,
                       exit_levels: Optional[float] = None, adaptive: Optional[AdaptiveSettings] = None) -> None:
        """Every argument of `sample` checked without sampling: commands call it before any progress bar or file."""
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ValueError(f"num={num!r}; need at least 1 sample")
        if exit_levels is not None and not exit_levels > 0:
            raise ValueError(f"exit_levels={exit_levels!r}; need a positive tolerance in 8-bit levels (or None)")
        if not 0 <= eta <= 1 or (eta and sampler != "ddim"):
            raise ValueError(f"eta={eta!r}; DDIM's eta is a number from 0 to 1, and other samplers take none")
        if sampler == "adaptive":
            if exit_levels is not None:
                raise ValueError(f"exit_levels={exit_levels!r}: the adaptive sampler sets its own steps; early exit is "
                                 f"for the fixed-step samplers")
            AdaptiveSampler(self.diffusion.log_snr(), adaptive or AdaptiveSettings()).end()
        else:
            self.diffusion.sampler_scheduler(sampler, steps)

    @torch.no_grad()
    def nll_bits_per_dim(self, images: Tensor, timesteps: Optional[int] = None, seed: int = 0,
                         use_ema: bool = True) -> Tensor:
        """Bits per dimension of each image [B, C, H, W] in [-1, 1] (see GaussianDiffusion.nll_bits_per_dim)."""
        self.eval()
        net = self.sampling_network(use_ema)
        generator = torch.Generator().manual_seed(seed)
        return self.diffusion.nll_bits_per_dim(lambda x, t: net(x, t).sample, images.to(self.device), timesteps, generator)


def initial_noise(seed: int, num: int, batch_size: int, shape: tuple[int, ...]) -> Iterator[tuple[int, Tensor]]:
    """(first index, noise) per batch: one N(0, 1) stream for all `num` samples, drawn a batch at a time (memory
    of one batch, not of all samples). torch's CPU generator gives the same numbers drawn in parts as at once
    when each part is a multiple of 16 numbers; other image sizes draw the whole stream at once."""
    generator = torch.Generator().manual_seed(seed)
    per_sample = math.prod(shape)
    if per_sample % 16:
        noise = torch.randn((num, *shape), generator=generator)
        yield from ((lo, noise[lo : lo + batch_size]) for lo in range(0, num, batch_size))
        return
    for lo in range(0, num, batch_size):
        yield lo, torch.randn((min(batch_size, num - lo), *shape), generator=generator)


def _images_of(batch) -> Tensor:
    """Data modules yield images or (images, labels)."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch
