"""DDPM training and DDPM / DDIM / DPM-Solver++ sampling of a U-Net whose attention may be QGFD.

What is trained: a diffusers UNet2DModel predicting the noise (or v) of images noised by a diffusers
DDPMScheduler. An exponential moving average of the weights is kept (and saved in checkpoints), and
is what sampling uses by default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from torch import Tensor

from qgfd_gen.attention import QGFDConfig
from qgfd_gen.attention import mean_qgfd_iterations

from .checkpointing import record_datamodule
from .training import adamw_with_warmup, exponential_moving_average
from .unet import build_unet

SAMPLERS = ("ddpm", "ddim", "dpm++")
PREDICTIONS = ("epsilon", "v_prediction")


@dataclass
class SampleResult:
    """Images in [0, 1] and what producing them cost."""

    images: Tensor  # [num, C, H, W]
    network_evaluations: float  # mean U-Net calls per sample (early exit may end batches at different steps)
    qgfd_iterations: Optional[float]  # mean QGFD diffusion iterations per attention call, None without QGFD
    seconds: float
    exited_early: int = 0  # samples that left the reverse process before its last step (exit_tol)


class ImageDiffusion(L.LightningModule):
    """DDPM on images. Arguments are the config: the U-Net's shape, the attention, the noise schedule,
    the optimiser and the EMA."""

    def __init__(
        self,
        sample_size: int = 32,
        in_channels: int = 3,
        block_out_channels: list[int] = (128, 256, 256, 256),
        down_block_types: list[str] = ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types: list[str] = ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        layers_per_block: int = 2,
        attention_head_dim: Optional[int] = None,
        norm_num_groups: int = 32,
        dropout: float = 0.1,
        attention: str = "qgfd",
        qgfd: QGFDConfig = QGFDConfig(),
        attention_block: str = "attention",
        prediction_type: str = "epsilon",
        num_train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 5000,
        ema_decay: float = 0.9999,
        val_timesteps: int = 10,
        val_seed: int = 1234,
    ):
        super().__init__()
        if prediction_type not in PREDICTIONS:
            raise ValueError(f"prediction_type={prediction_type!r}; choose one of {', '.join(PREDICTIONS)}")
        if isinstance(qgfd, dict):
            qgfd = QGFDConfig(**qgfd)
        self.save_hyperparameters()
        self.unet = build_unet(
            sample_size, in_channels, list(block_out_channels), list(down_block_types), list(up_block_types),
            layers_per_block, attention_head_dim, norm_num_groups, dropout, attention, qgfd, attention_block,
        )
        self.ema = exponential_moving_average(self.unet, ema_decay)
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, beta_start=beta_start,
            beta_end=beta_end, prediction_type=prediction_type, clip_sample=True,
        )
        # alphas_cumprod as a buffer so that it follows the module to its device
        self.register_buffer("alphas_cumprod", self.noise_scheduler.alphas_cumprod.clone(), persistent=False)

    # ------------------------------------------------------------------ training
    def forward(self, noisy: Tensor, timesteps: Tensor, use_ema: bool = False) -> Tensor:
        net = self.ema.module if use_ema else self.unet
        return net(noisy, timesteps).sample

    def diffusion_loss(self, images: Tensor, timesteps: Tensor, noise: Tensor) -> Tensor:
        noisy = self._add_noise(images, noise, timesteps)
        target = noise if self.hparams.prediction_type == "epsilon" else self._velocity(images, noise, timesteps)
        return F.mse_loss(self(noisy, timesteps).float(), target.float())

    def _coefficients(self, timesteps: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        abar = self.alphas_cumprod.to(like.device)[timesteps].to(like.dtype).view(-1, 1, 1, 1)
        return abar.sqrt(), (1 - abar).sqrt()

    def _add_noise(self, images: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        signal, sigma = self._coefficients(timesteps, images)
        return signal * images + sigma * noise

    def _velocity(self, images: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        signal, sigma = self._coefficients(timesteps, images)
        return signal * noise - sigma * images

    def training_step(self, batch, batch_idx: int) -> Tensor:
        images = _images_of(batch)
        noise = torch.randn_like(images)
        timesteps = torch.randint(0, self.hparams.num_train_timesteps, (images.shape[0],), device=images.device)
        loss = self.diffusion_loss(images, timesteps, noise)
        self.log("train/loss", loss, prog_bar=True, batch_size=images.shape[0])
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.ema.update_parameters(self.unet)

    def validation_step(self, batch, batch_idx: int) -> Tensor:
        """Denoising loss at a fixed set of timesteps with noise fixed by (val_seed, batch index), so that
        runs and checkpoints compare on the same numbers."""
        images = _images_of(batch)
        generator = torch.Generator().manual_seed(self.hparams.val_seed + batch_idx)
        count = self.hparams.val_timesteps
        fixed = torch.linspace(0, self.hparams.num_train_timesteps - 1, count).round().long()
        losses = []
        for t in fixed.tolist():
            noise = torch.randn(images.shape, generator=generator).to(images)
            timesteps = torch.full((images.shape[0],), t, device=images.device, dtype=torch.long)
            losses.append(self.diffusion_loss(images, timesteps, noise))
        loss = torch.stack(losses).mean()
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=images.shape[0])
        return loss

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_with_warmup(self.unet.parameters(), hp.lr, hp.weight_decay, hp.warmup_steps, hp.betas)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        record_datamodule(self, checkpoint)

    # ------------------------------------------------------------------ sampling
    def make_sampler(self, sampler: str, steps: int):
        """A diffusers scheduler sharing the training noise schedule, set to `steps` inference steps."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler={sampler!r}; choose one of {', '.join(SAMPLERS)}")
        total = self.hparams.num_train_timesteps
        if not isinstance(steps, int) or not 1 <= steps <= total:
            raise ValueError(f"steps={steps!r}; need an integer from 1 to {total} (the training timesteps)")
        config = self.noise_scheduler.config
        if sampler == "ddpm":
            scheduler = DDPMScheduler.from_config(config)
        elif sampler == "ddim":
            scheduler = DDIMScheduler.from_config(config, set_alpha_to_one=False)
        else:
            scheduler = DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
        scheduler.set_timesteps(steps)
        return scheduler

    @torch.no_grad()
    def sample(
        self,
        num: int,
        sampler: str = "ddim",
        steps: int = 50,
        eta: float = 0.0,
        seed: int = 0,
        use_ema: bool = True,
        batch_size: int = 64,
        exit_tol: Optional[float] = None,
        progress: Optional[Callable[[int], None]] = None,
    ) -> SampleResult:
        """`num` images in [0, 1]. The same seed gives the same images whatever the batch size.
        exit_tol: a sample stops once its predicted clean image changes by less than this (max absolute
        difference over its pixels, images in [-1, 1]) between two steps, and that prediction is returned."""
        if num < 1:
            raise ValueError(f"num={num!r}; need at least 1 sample")
        if exit_tol is not None and not exit_tol > 0:
            raise ValueError(f"exit_tol={exit_tol!r}; need a positive tolerance (or None)")
        was_training = self.training
        self.eval()
        start = time.perf_counter()
        shape = (self.hparams.in_channels, self.hparams.sample_size, self.hparams.sample_size)
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((num, *shape), generator=generator)  # drawn once: batching does not change it
        outputs, evaluations, iterations = [], [], []
        for lo in range(0, num, batch_size):
            batch_noise = noise[lo : lo + batch_size].to(self.device)
            batch_generator = torch.Generator().manual_seed(seed * 100_003 + lo)
            images, used, its = self._reverse(batch_noise, sampler, steps, eta, use_ema, exit_tol, batch_generator)
            outputs.append(images.cpu())
            evaluations.append(used)
            iterations.extend(its)
            if progress:
                progress(images.shape[0])
        self.train(was_training)
        images = torch.cat(outputs).clamp(-1, 1).add(1).div(2)
        qgfd_its = sum(iterations) / len(iterations) if iterations else None
        evaluations = torch.cat(evaluations)
        full = len(self.make_sampler(sampler, steps).timesteps)
        return SampleResult(images, float(evaluations.mean()), qgfd_its, time.perf_counter() - start,
                            int((evaluations < full).sum()))

    def _reverse(self, x: Tensor, sampler: str, steps: int, eta: float, use_ema: bool, exit_tol: Optional[float],
                 generator: torch.Generator) -> tuple[Tensor, Tensor, list[float]]:
        """Images, network calls per sample, mean QGFD iterations per call. With exit_tol, a sample whose
        predicted clean image changes by less than exit_tol (max over its pixels) between two steps
        leaves the batch with that prediction; the rest go on, so it costs no further network calls."""
        scheduler = self.make_sampler(sampler, steps)
        net = self.ema.module if use_ema else self.unet
        out = torch.empty_like(x)
        alive = torch.arange(x.shape[0], device=x.device)  # which samples of the batch are still running
        evaluations = torch.zeros(x.shape[0])
        previous_x0, iterations = None, []
        step_kwargs = {"eta": eta} if sampler == "ddim" else {}
        last = len(scheduler.timesteps) - 1
        for index, t in enumerate(scheduler.timesteps):
            timesteps = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
            model_output = net(x, timesteps).sample
            evaluations[alive.cpu()] += 1
            its = mean_qgfd_iterations(net)
            if its is not None:
                iterations.append(its)
            if exit_tol is not None and index < last:
                x0 = self._predicted_clean(x, model_output, timesteps)
                if previous_x0 is not None:
                    settled = (x0 - previous_x0).abs().flatten(1).amax(1) < exit_tol
                    if bool(settled.any()):
                        out[alive[settled]] = x0[settled]
                        keep = ~settled
                        if not bool(keep.any()):
                            return out, evaluations, iterations
                        alive, x, model_output, x0 = alive[keep], x[keep], model_output[keep], x0[keep]
                        _keep_in_scheduler(scheduler, keep)
                previous_x0 = x0
            noise_gen = {"generator": _device_generator(generator, x.device)} if sampler != "dpm++" else {}
            x = scheduler.step(model_output, t, x, **step_kwargs, **noise_gen).prev_sample
        out[alive] = x
        return out, evaluations, iterations

    def _predicted_clean(self, x: Tensor, model_output: Tensor, timesteps: Tensor) -> Tensor:
        signal, sigma = self._coefficients(timesteps, x)
        if self.hparams.prediction_type == "epsilon":
            x0 = (x - sigma * model_output) / signal
        else:
            x0 = signal * x - sigma * model_output
        return x0.clamp(-1, 1)


def _keep_in_scheduler(scheduler, keep: Tensor) -> None:
    """Multistep samplers (DPM-Solver++) remember earlier model outputs: drop the samples that left."""
    history = getattr(scheduler, "model_outputs", None)
    if isinstance(history, list):
        scheduler.model_outputs = [h[keep] if isinstance(h, Tensor) else h for h in history]


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    if device.type == "cpu":
        return generator
    seeded = torch.Generator(device=device)
    seeded.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return seeded


def _images_of(batch) -> Tensor:
    """Data modules yield images or (images, labels)."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch
