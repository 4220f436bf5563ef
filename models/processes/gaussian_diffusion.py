"""The Gaussian diffusion process on images: the one owner of the noise schedule and every formula on it.

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps                     (q(x_t | x_0), `add_noise`)
    v   = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0                       (`velocity`)
    x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) = sqrt(abar_t) x_t - sqrt(1 - abar_t) v

`abar` (alpha-bar, diffusers' alphas_cumprod) is the schedule's signal level; it is unrelated to QGFD's
weight alpha. The beta schedule and the reverse-step rules come from diffusers' schedulers (DDPM, DDIM,
DPM-Solver++); this object adds what they do not do: per-sample early exit, and the variational bound
(Ho et al. 2020, eq. 5) that gives NLL in bits per dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from torch import Tensor, nn

from qgfd_gen.config import coerce_config

from .adaptive_sampler import AdaptiveSampler, AdaptiveSettings
from .early_exit import EarlyExit
from .log_snr import LogSNRSchedule
from .samples import ChainResult

# Every sampler clips its clean-image prediction to [-1, 1] at each step (DDPM / DDIM through diffusers'
# `clip_sample`, DPM-Solver++ through its thresholding at sample_max_value 1, the adaptive sampler in
# _clean_from_output): an undertrained model's clean prediction at the noisiest steps multiplies its noise error by
# up to 1 / sqrt(abar), and DPM-Solver++ without the clip diverged on the 5,000-step CIFAR-10 model
# (docs/results/sweeps/cifar-cpu-5000-step-model). `dpm++-unclipped` is the sampler before that change, which the
# committed digits figures used.
FIXED_SAMPLERS = ("ddpm", "ddim", "dpm++", "dpm++-unclipped")
SAMPLERS = FIXED_SAMPLERS + ("adaptive",)
PREDICTIONS = ("epsilon", "v_prediction")
Denoiser = Callable[[Tensor, Tensor], Tensor]  # (x_t [B, C, H, W], timesteps [B]) -> network output


@dataclass
class NoiseSchedule:
    """DDPM's schedule by default: linear betas 1e-4..0.02 over 1000 timesteps, epsilon prediction."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: str = "epsilon"

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTIONS:
            raise ValueError(f"prediction_type={self.prediction_type!r}; choose one of {', '.join(PREDICTIONS)}")
        if isinstance(self.num_train_timesteps, bool) or not int(self.num_train_timesteps) >= 2:
            raise ValueError(f"num_train_timesteps={self.num_train_timesteps!r}; need an integer >= 2")

    @classmethod
    def coerce(cls, value: "NoiseSchedule | dict | None") -> "NoiseSchedule":
        return coerce_config(cls, value, "schedule")


class GaussianDiffusion(nn.Module):
    """Holds abar as a non-persistent buffer (it follows the module's device, stays out of checkpoints)."""

    def __init__(self, schedule: NoiseSchedule):
        super().__init__()
        self.schedule = schedule
        self.ddpm_scheduler = DDPMScheduler(
            num_train_timesteps=schedule.num_train_timesteps, beta_schedule=schedule.beta_schedule,
            beta_start=schedule.beta_start, beta_end=schedule.beta_end, prediction_type=schedule.prediction_type,
            clip_sample=True,
        )
        self.register_buffer("alpha_bar", self.ddpm_scheduler.alphas_cumprod.clone(), persistent=False)

    @property
    def num_timesteps(self) -> int:
        return self.schedule.num_train_timesteps

    # ------------------------------------------------------------------ q(x_t | x_0) and conversions
    def _signal_and_sigma(self, timesteps: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        abar = self.alpha_bar.to(like.device)[timesteps].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))
        return abar.sqrt(), (1 - abar).sqrt()

    def add_noise(self, x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        signal, sigma = self._signal_and_sigma(timesteps, x0)
        return signal * x0 + sigma * noise

    def velocity(self, x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        signal, sigma = self._signal_and_sigma(timesteps, x0)
        return signal * noise - sigma * x0

    def training_target(self, x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        return noise if self.schedule.prediction_type == "epsilon" else self.velocity(x0, noise, timesteps)

    def loss(self, denoise: Denoiser, x0: Tensor, timesteps: Tensor, noise: Tensor) -> Tensor:
        """The simple DDPM loss: MSE between the network output and its target at the given noise."""
        output = denoise(self.add_noise(x0, noise, timesteps), timesteps)
        return F.mse_loss(output.float(), self.training_target(x0, noise, timesteps).float())

    def predicted_clean(self, x_t: Tensor, output: Tensor, timesteps: Tensor, clip: bool = True) -> Tensor:
        signal, sigma = self._signal_and_sigma(timesteps, x_t)
        return self._clean_from_output(x_t, output, signal, sigma, clip)

    def _clean_from_output(self, x_t: Tensor, output: Tensor, signal: Tensor, sigma: Tensor, clip: bool = True) -> Tensor:
        """The clean image from the network's output (epsilon or v) at noise (signal, sigma), broadcastable."""
        if self.schedule.prediction_type == "epsilon":
            x0 = (x_t - sigma * output) / signal
        else:
            x0 = signal * x_t - sigma * output
        return x0.clamp(-1, 1) if clip else x0

    # ------------------------------------------------------------------ reverse process
    def sampler_scheduler(self, sampler: str, steps: int):
        """A diffusers scheduler on this schedule, set to `steps` sampler steps."""
        if sampler not in FIXED_SAMPLERS:
            raise ValueError(f"sampler={sampler!r}; choose one of {', '.join(SAMPLERS)}"
                             + (" (the adaptive sampler takes no step count)" if sampler == "adaptive" else ""))
        total = self.num_timesteps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= total:
            raise ValueError(f"steps={steps!r}; need an integer from 1 to {total} (the training timesteps)")
        config = self.ddpm_scheduler.config
        if sampler == "ddpm":
            scheduler = DDPMScheduler.from_config(config)
        elif sampler == "ddim":
            scheduler = DDIMScheduler.from_config(config, set_alpha_to_one=False)
        else:
            scheduler = DPMSolverMultistepScheduler.from_config(  # thresholding at 1 is clipping to [-1, 1]
                config, algorithm_type="dpmsolver++", solver_order=2, thresholding=sampler == "dpm++",
                sample_max_value=1.0)
        scheduler.set_timesteps(steps)
        return scheduler

    def log_snr(self) -> LogSNRSchedule:
        """The schedule's log-SNR (float64, on the CPU)."""
        return LogSNRSchedule(self.alpha_bar.cpu())

    def reverse(self, denoise: Denoiser, x: Tensor, sampler: str, steps: Optional[int] = None, eta: float = 0.0,
                generator: Optional[torch.Generator] = None, exit_levels: Optional[float] = None,
                adaptive: Optional[AdaptiveSettings] = None) -> ChainResult:
        """Run the reverse process from noise `x` with a fixed-step sampler (`steps` steps), or with the
        error-controlled `adaptive` sampler (its settings; `steps` unused). exit_levels (fixed-step samplers):
        a sample leaves the batch with its predicted clean image once `early_exit.EarlyExit` says it settled."""
        if sampler == "adaptive":
            result = AdaptiveSampler(self.log_snr(), adaptive or AdaptiveSettings()).sample(self._clean_predictor(denoise), x)
            return ChainResult(result.samples, result.evaluations.float(), result.rejected.float())
        scheduler = self.sampler_scheduler(sampler, steps)
        out = torch.empty_like(x)
        alive = torch.arange(x.shape[0], device=x.device)  # which samples of the batch are still running
        evaluations = torch.zeros(x.shape[0])
        step_kwargs = {"eta": eta} if sampler == "ddim" else {}
        log_snr = self.log_snr().lambdas  # on the CPU in float64 (MPS has no float64)
        last = len(scheduler.timesteps) - 1
        exit_rule = EarlyExit(exit_levels, float(log_snr[0])) if exit_levels is not None else None
        for index, t in enumerate(scheduler.timesteps):
            timesteps = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
            output = denoise(x, timesteps)
            evaluations[alive.cpu()] += 1
            if exit_rule is not None and index < last:
                x0 = self.predicted_clean(x, output, timesteps)
                settled = exit_rule.settled(x0, float(log_snr[int(t)]))
                if settled is not None and bool(settled.any()):
                    out[alive[settled]] = x0[settled]
                    keep = ~settled
                    if not bool(keep.any()):
                        return ChainResult(out, evaluations, torch.zeros_like(evaluations))
                    alive, x, output = alive[keep], x[keep], output[keep]
                    exit_rule.keep(keep)
                    _keep_in_scheduler(scheduler, keep)
            noisy = sampler in ("ddpm", "ddim")  # DPM-Solver++'s steps take no generator
            noise_kwargs = {"generator": _device_generator(generator, x.device)} if noisy else {}
            x = scheduler.step(output, t, x, **step_kwargs, **noise_kwargs).prev_sample
        out[alive] = x
        return ChainResult(out, evaluations, torch.zeros_like(evaluations))

    def _clean_predictor(self, denoise: Denoiser):
        """(x, alpha, sigma, continuous timestep) -> the clipped clean image, for the adaptive sampler."""

        def clean(x: Tensor, alpha: Tensor, sigma: Tensor, timesteps: Tensor) -> Tensor:
            shape = (-1,) + (1,) * (x.dim() - 1)
            return self._clean_from_output(x, denoise(x, timesteps), alpha.view(shape), sigma.view(shape))

        return clean

    # ------------------------------------------------------------------ variational bound
    def _posterior_coefficients(self, device: torch.device) -> dict[str, Tensor]:
        """q(x_{t-1} | x_t, x_0) = N(c_x0 x_0 + c_xt x_t, var) per timestep index, in float64."""
        abar = self.alpha_bar.double().to(device)  # abar[i] is DDPM's abar_{i+1}
        abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype, device=device), abar[:-1]])
        betas = 1 - abar / abar_prev
        var = betas * (1 - abar_prev) / (1 - abar)
        return {"abar": abar, "var": var, "var_clipped": torch.cat([var[1:2], var[1:]]),
                "c_x0": betas * abar_prev.sqrt() / (1 - abar), "c_xt": (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar)}

    @torch.no_grad()
    def nll_bits_per_dim(self, denoise: Denoiser, x0: Tensor, timesteps: Optional[int] = None,
                         generator: Optional[torch.Generator] = None) -> Tensor:
        """Bits per dimension of each image [B, C, H, W] in [-1, 1] from the variational bound
            L = KL(q(x_T|x_0) || N(0, I)) + sum_{t=2..T} KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t)) - log p(x_0|x_1)
        with p's variance the posterior variance (clipped at t = 1) and a discretized Gaussian decoder over
        256 levels. `timesteps=K` estimates the middle sum from K evenly spread timesteps, scaled by
        (T - 1) / K (K = T - 1 is the exact bound)."""
        device, x0 = x0.device, x0.double()
        c = self._posterior_coefficients(device)
        total_steps = c["abar"].shape[0]

        def noised(index: int) -> Tensor:
            noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64).to(device)
            return c["abar"][index].sqrt() * x0 + (1 - c["abar"][index]).sqrt() * noise

        def predicted_mean(x_t: Tensor, index: int) -> Tensor:
            t = torch.full((x0.shape[0],), index, device=device, dtype=torch.long)
            x0_pred = self.predicted_clean(x_t, denoise(x_t.float(), t).double(), t, clip=False)
            return c["c_x0"][index] * x0_pred + c["c_xt"][index] * x_t

        mean_T, var_T = c["abar"][-1].sqrt() * x0, 1 - c["abar"][-1]
        total = (0.5 * (-1.0 - torch.log(var_T) + var_T + mean_T**2)).flatten(1).sum(1)  # prior term
        middle = list(range(1, total_steps))  # indices of t = 2..T
        if timesteps is not None:
            if isinstance(timesteps, bool) or not 1 <= timesteps <= len(middle):
                raise ValueError(f"timesteps={timesteps!r}; need 1..{len(middle)} (or None for all)")
            middle = torch.linspace(1, total_steps - 1, timesteps).round().long().unique().tolist()
        scale = (total_steps - 1) / len(middle)
        for index in middle:
            x_t = noised(index)
            true_mean = c["c_x0"][index] * x0 + c["c_xt"][index] * x_t
            kl = (true_mean - predicted_mean(x_t, index)) ** 2 / (2 * c["var"][index])
            total = total + scale * kl.flatten(1).sum(1)
        decoder_log_scale = 0.5 * torch.log(c["var_clipped"][0])
        decoder = discretized_gaussian_log_likelihood(x0, predicted_mean(noised(0), 0), decoder_log_scale)
        total = total - decoder.flatten(1).sum(1)
        return (total / (x0[0].numel() * math.log(2.0))).float().cpu()


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log p(x) per element for x on the 256-level grid of [-1, 1] (outer bins reach to +-infinity)."""
    centred, inv_std = x - mean, torch.exp(-log_scale)
    cdf_plus = _normal_cdf(inv_std * (centred + 1.0 / 255))
    cdf_minus = _normal_cdf(inv_std * (centred - 1.0 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_minus = torch.log((1.0 - cdf_minus).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, log_delta))


def _normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _keep_in_scheduler(scheduler, keep: Tensor) -> None:
    """Multistep samplers (DPM-Solver++) remember earlier model outputs: drop the samples that left."""
    history = getattr(scheduler, "model_outputs", None)
    if isinstance(history, list):
        scheduler.model_outputs = [h[keep] if isinstance(h, Tensor) else h for h in history]


def _device_generator(generator: Optional[torch.Generator], device: torch.device) -> Optional[torch.Generator]:
    if generator is None or device.type == "cpu":
        return generator
    seeded = torch.Generator(device=device)
    seeded.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return seeded
