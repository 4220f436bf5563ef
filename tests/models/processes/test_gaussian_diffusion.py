"""The Gaussian process: conversions, samplers through the LightningModule, per-sample early exit, NLL."""

import pytest
import torch

from models.processes.gaussian_diffusion import GaussianDiffusion, NoiseSchedule

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["models.processes.samples"]


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_noise_and_clean_image_conversions_are_inverse(prediction):
    diffusion = GaussianDiffusion(NoiseSchedule(num_train_timesteps=100, prediction_type=prediction))
    x0 = torch.rand(4, 1, 4, 4, dtype=torch.float64) * 2 - 1
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 10, 50, 99])
    x_t = diffusion.add_noise(x0, noise, t)
    target = diffusion.training_target(x0, noise, t)
    assert torch.allclose(diffusion.predicted_clean(x_t, target, t, clip=False), x0, atol=1e-5)
    abar = diffusion.alpha_bar[t].double().view(-1, 1, 1, 1)
    assert torch.allclose(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * noise)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++"])
def test_sampling_shape_range_and_seed(sampler, tiny_image_model):
    model = tiny_image_model()
    steps = 20 if sampler == "ddpm" else 5  # DDPM respaced to 20 of the 100 training timesteps
    a = model.sample(5, sampler=sampler, steps=steps, seed=3, batch_size=2)
    b = model.sample(5, sampler=sampler, steps=steps, seed=3, batch_size=5)
    c = model.sample(5, sampler=sampler, steps=steps, seed=4, batch_size=5)
    assert a.images.shape == (5, 1, 8, 8)
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert a.network_evaluations == steps
    assert a.qgfd_iterations == 4.0
    if sampler != "ddpm":  # deterministic samplers: batching must not change a single pixel's noise
        assert torch.allclose(a.images, b.images, atol=1e-5)
    assert torch.equal(b.images, model.sample(5, sampler=sampler, steps=steps, seed=3, batch_size=5).images)
    assert not torch.allclose(b.images, c.images)


@pytest.mark.parametrize("sampler, tol", [("ddim", 1.5), ("dpm++", 1.5), ("ddpm", 100.0)])
def test_early_exit_lets_settled_samples_leave_the_batch(sampler, tol, tiny_image_model):
    """(DDPM's fresh noise at every step keeps the prediction moving: only a loose tolerance lets it leave.)"""
    model = tiny_image_model()
    full = model.sample(6, sampler=sampler, steps=20, seed=1, batch_size=6)
    early = model.sample(6, sampler=sampler, steps=20, seed=1, batch_size=6, exit_levels=tol)
    assert full.network_evaluations == 20
    assert early.network_evaluations < 20
    assert early.images.shape == full.images.shape
    assert early.images.min() >= 0 and early.images.max() <= 1


def test_a_sample_that_never_settles_is_the_full_chain(tiny_image_model):
    model = tiny_image_model()
    full = model.sample(4, sampler="ddim", steps=10, seed=2)
    never = model.sample(4, sampler="ddim", steps=10, seed=2, exit_levels=1e-12)
    assert never.network_evaluations == 10
    assert torch.equal(full.images, never.images)


def test_sampling_rejects_bad_arguments(tiny_image_model):
    model = tiny_image_model()
    with pytest.raises(ValueError, match="sampler='euler'"):
        model.sample(2, sampler="euler")
    with pytest.raises(ValueError, match="steps=0"):
        model.sample(2, steps=0)
    with pytest.raises(ValueError, match="steps=500"):
        model.sample(2, steps=500)
    with pytest.raises(ValueError, match="exit_levels=0"):
        model.sample(2, exit_levels=0)
    with pytest.raises(ValueError, match="num=0"):
        model.sample(0)
    with pytest.raises(ValueError, match="prediction_type='x0'"):
        NoiseSchedule(prediction_type="x0")


def test_nll_bits_per_dim(tiny_image_model):
    model = tiny_image_model(timesteps=50)
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    full = model.nll_bits_per_dim(images, seed=0)
    assert full.shape == (4,) and torch.isfinite(full).all() and (full > 0).all()
    assert torch.equal(full, model.nll_bits_per_dim(images, seed=0))
    assert torch.allclose(model.nll_bits_per_dim(images, timesteps=49, seed=0), full)  # all T - 1 middle terms
    estimate = model.nll_bits_per_dim(images, timesteps=10, seed=0)
    assert torch.isfinite(estimate).all() and (estimate > 0).all() and not torch.allclose(estimate, full)
    clean = torch.linspace(-1, 1, 256)[torch.randint(0, 256, (2, 1, 8, 8), generator=torch.Generator().manual_seed(0))]
    assert (model.nll_bits_per_dim(clean, seed=0) > 0).all()
    with pytest.raises(ValueError, match="timesteps=50"):
        model.nll_bits_per_dim(images, timesteps=50)


def test_eta_is_ddim_only_and_in_range(tiny_image_model):
    model = tiny_image_model()
    for sampler, eta in (("ddim", 5.0), ("ddim", -0.1), ("ddpm", 0.5)):
        with pytest.raises(ValueError, match=f"eta={eta}"):
            model.sample(2, sampler=sampler, steps=100 if sampler == "ddpm" else 4, eta=eta)
    assert model.sample(2, sampler="ddim", steps=4, eta=1.0).images.shape == (2, 1, 8, 8)


def test_non_finite_samples_fail_naming_the_setting(tiny_image_model):
    model = tiny_image_model()
    with torch.no_grad():
        model.ema.module.conv_out.weight.fill_(float("inf"))
    with pytest.raises(ValueError, match=r"2 of 2 samples came out non-finite \(sampler=ddim, steps=4"):
        model.sample(2, sampler="ddim", steps=4)


@pytest.mark.parametrize("sampler, clipped", [("ddim", True), ("dpm++", True), ("dpm++-unclipped", False)])
def test_samplers_clip_the_clean_prediction_as_ddim_does(sampler, clipped):
    """A denoiser whose noise prediction is far off (as an undertrained one's is at the noisiest steps) puts the
    clean prediction far outside [-1, 1]; every sampler but the explicitly unclipped one keeps it there."""
    diffusion = GaussianDiffusion(NoiseSchedule(num_train_timesteps=100))
    x = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    result = diffusion.reverse(lambda x_t, t: torch.full_like(x_t, -3.0), x, sampler, steps=10)
    peak = float(result.samples.abs().max())
    assert (peak <= 1 + 1e-5) if clipped else (peak > 5), peak
