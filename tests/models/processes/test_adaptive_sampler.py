"""The error-controlled adaptive sampler and the grid-independent early exit of the fixed-step samplers.

Accuracy is checked against the exact denoiser of Gaussian data (x_0 ~ N(0, c^2 I): the optimal noise
prediction is sigma x / (alpha^2 c^2 + sigma^2)), a real denoiser whose ODE has no learned error, on
DDPM's 1000-step schedule; the rest on a tiny U-Net."""

import pytest
import torch

from models.processes.adaptive_sampler import AdaptiveSampler, AdaptiveSettings
from models.processes.log_snr import LogSNRSchedule
from models.processes.gaussian_diffusion import GaussianDiffusion, NoiseSchedule

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["models.processes.early_exit", "models.processes.log_snr"]


def gaussian_denoiser(diffusion: GaussianDiffusion, c: float = 0.3):
    """The exact epsilon of N(0, c^2) data at any (continuous) timestep of the schedule (c = 0.3 keeps the
    samples inside [-1, 1], away from the clipping of predicted clean images)."""
    log_alpha = 0.5 * diffusion.alpha_bar.double().log()

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.double()
        lo = t.floor().long().clamp(0, len(log_alpha) - 2)
        weight = t - lo
        a2 = torch.exp(2 * (log_alpha[lo] * (1 - weight) + log_alpha[lo + 1] * weight)).view(-1, 1, 1, 1)
        return ((1 - a2).sqrt() * x / (a2 * c * c + 1 - a2)).float()

    return denoise


@pytest.fixture(scope="module")
def gaussian():
    diffusion = GaussianDiffusion(NoiseSchedule())
    noise = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    return diffusion, gaussian_denoiser(diffusion), noise


def adaptive(diffusion, denoise, noise, **settings):
    return diffusion.reverse(denoise, noise, "adaptive", adaptive=AdaptiveSettings(**settings))


def test_the_log_snr_schedule_inverts_itself():
    schedule = LogSNRSchedule(GaussianDiffusion(NoiseSchedule()).alpha_bar)
    t = torch.tensor([0.0, 0.5, 10.0, 123.25, 998.0, 999.0], dtype=torch.float64)
    lo = t.floor().long().clamp(max=998)
    log_alpha = schedule.log_alpha[lo] + (t - lo) * (schedule.log_alpha[lo + 1] - schedule.log_alpha[lo])
    assert torch.allclose(schedule.timestep(LogSNRSchedule.lambda_of(log_alpha)), t, atol=1e-6)
    alpha, sigma = LogSNRSchedule.alpha_sigma(LogSNRSchedule.lambda_of(log_alpha))
    assert torch.allclose(alpha, log_alpha.exp()) and torch.allclose(alpha**2 + sigma**2, torch.ones_like(alpha))


def test_a_looser_tolerance_takes_fewer_evaluations(gaussian):
    diffusion, denoise, noise = gaussian
    loose, tight = adaptive(*gaussian, rtol=0.1, atol=0.02), adaptive(*gaussian, rtol=1e-3, atol=1e-4)
    assert loose.evaluations.mean() < tight.evaluations.mean()
    assert (loose.evaluations < tight.evaluations).all()


def test_a_tight_tolerance_matches_a_1000_step_ddim_sample(gaussian):
    """Bound: 0.005 in [-1, 1] units (0.6 8-bit levels) at rtol 1e-3, atol 1e-4 (measured: 0.001 in 39-41
    evaluations, 0.0025 at rtol 1e-4: the two discretisations of the schedule differ by that much; DDIM moves
    by 0.003 between 500 and 1000 steps)."""
    diffusion, denoise, noise = gaussian
    reference = diffusion.reverse(denoise, noise, "ddim", 1000).samples
    tight = adaptive(*gaussian, rtol=1e-3, atol=1e-4)
    assert (tight.samples - reference).abs().max() < 0.005
    assert tight.evaluations.max() < 60  # and it got there in a seventeenth of DDIM's evaluations


def test_steps_are_per_sample_so_the_batch_does_not_matter(gaussian):
    diffusion, denoise, noise = gaussian
    whole = adaptive(*gaussian, rtol=1e-3, atol=1e-4)
    one_by_one = [adaptive(diffusion, denoise, noise[i : i + 1], rtol=1e-3, atol=1e-4) for i in range(len(noise))]
    assert torch.allclose(whole.samples, torch.cat([r.samples for r in one_by_one]), atol=1e-6)
    assert torch.equal(whole.evaluations, torch.cat([r.evaluations for r in one_by_one]))
    assert len(set(whole.evaluations.tolist())) > 1  # the samples did take different steps


def test_a_rejected_step_leaves_no_trace(gaussian):
    """A step that is too large is retried smaller from the same state: the result is the step taken at the
    accepted size from scratch, and the retries call no network."""
    diffusion, denoise, noise = gaussian
    sampler = AdaptiveSampler(diffusion.log_snr(), AdaptiveSettings(rtol=1e-3, atol=1e-4))
    clean = diffusion._clean_predictor(denoise)
    lam = torch.full((len(noise),), -1.0, dtype=torch.float64)
    h_p, controlled = torch.full_like(lam, 0.5), torch.ones(len(noise), dtype=torch.bool)
    x = noise * 1.3
    clean_s, clean_p = sampler._predict(clean, x, lam), sampler._predict(clean, x * 1.1, lam - 0.5)
    x_big, h, err, rejections = sampler._controlled_step(x, clean_s, clean_p, lam, torch.full_like(lam, 3.0), h_p,
                                                         controlled)
    assert (rejections > 0).all() and (h < 3.0).all() and (err <= 1).all()
    x_direct, h_direct, _, none = sampler._controlled_step(x, clean_s, clean_p, lam, h, h_p, controlled)
    assert torch.equal(x_big, x_direct) and torch.equal(h, h_direct) and not none.any()

    calls = []

    def counting(x, t):
        calls.append(len(x))
        return denoise(x, t)

    run = diffusion.reverse(counting, noise, "adaptive", adaptive=AdaptiveSettings(rtol=1e-3, atol=1e-4, max_factor=10))
    assert run.rejected.sum() > 0 and sum(calls) == run.evaluations.sum()


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_the_adaptive_sampler_runs_on_a_u_net(prediction, tiny_image_model):
    model = tiny_image_model(timesteps=1000, prediction_type=prediction)
    result = model.sample(3, sampler="adaptive", seed=0, batch_size=3, adaptive=AdaptiveSettings(rtol=0.1, atol=0.02))
    again = model.sample(3, sampler="adaptive", seed=0, batch_size=3, adaptive=AdaptiveSettings(rtol=0.1, atol=0.02))
    assert result.images.shape == (3, 1, 8, 8) and 0 <= result.images.min() and result.images.max() <= 1
    assert torch.equal(result.images, again.images)  # deterministic for a seed
    assert result.evaluations_min <= result.network_evaluations <= result.evaluations_max
    assert result.rejected_steps >= 0


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_tolerances_are_refused(bad):
    with pytest.raises(ValueError, match="rtol="):
        AdaptiveSettings(rtol=bad)
    with pytest.raises(ValueError, match="atol="):
        AdaptiveSettings(atol=bad)


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_the_commands_refuse_bad_tolerances(value, tmp_path, capsys):
    from sampling.commands.evaluate import main as eval_main
    from sampling.commands.sample import main as sample_main

    for main, argv in ((sample_main, ["images", "--ckpt", "x.ckpt", "--sampler", "adaptive", "--rtol", value]),
                       (eval_main, ["images", "--ckpt", "x.ckpt", "--sampler", "adaptive", "--atol", value])):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        stderr = capsys.readouterr().err
        assert f"{value!r}: need" in stderr and "positive finite number" in stderr
        assert "argument --rtol" in stderr or "argument --atol" in stderr


def test_early_exit_means_the_same_at_every_step_count(gaussian):
    """The exit measures the clean prediction's change per unit of log-SNR: with one tolerance, samples
    leave at about the same noise level at 50, 100 and 1000 DDIM steps, and the image they return is within
    about the tolerance (8-bit levels, RMS) of the full chain's."""
    diffusion, denoise, noise = gaussian
    exit_timesteps = {}
    for steps in (50, 100, 1000):
        full = diffusion.reverse(denoise, noise, "ddim", steps).samples
        early = diffusion.reverse(denoise, noise, "ddim", steps, exit_levels=8.0)
        assert early.evaluations.max() < steps  # every sample left early
        exit_timesteps[steps] = (steps - early.evaluations) * (1000 // steps)  # DDIM's "leading" spacing
        moved = 127.5 * (early.samples - full).pow(2).flatten(1).mean(1).sqrt()
        assert moved.max() < 2 * 8.0
    assert (exit_timesteps[50] - exit_timesteps[1000]).abs().max() <= 60
    assert (exit_timesteps[100] - exit_timesteps[1000]).abs().max() <= 60


def test_a_wobbling_prediction_does_not_make_samples_leave_early(gaussian):
    """A trained network's clean prediction wobbles from one timestep to the next. Here by one 8-bit level
    (a fixed pattern times sin(2.1 t)): rates measured over short stretches of log-SNR on a fine grid read the
    wobble as change and its decay wrongly (rates over 0.1 log-SNR sent samples out at t ~ 215 of 1000, 22-30
    levels from the full chain's image); over 0.5 the returned images stay within the tolerance at every grid."""
    diffusion, exact, noise = gaussian
    abar = diffusion.alpha_bar.double()
    pattern = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(9))

    def wobbling(x, t):
        signal, sigma = (abar[t.long()].sqrt().view(-1, 1, 1, 1), (1 - abar[t.long()]).sqrt().view(-1, 1, 1, 1))
        wobble = torch.sin(t.double() * 2.1).view(-1, 1, 1, 1) * pattern / 127.5  # in the clean prediction
        return (exact(x, t).double() - signal * wobble / sigma).float()

    for steps in (50, 100, 1000):
        full = diffusion.reverse(wobbling, noise, "ddim", steps).samples
        early = diffusion.reverse(wobbling, noise, "ddim", steps, exit_levels=4.0)
        moved = 127.5 * (early.samples - full).pow(2).flatten(1).mean(1).sqrt()
        assert moved.max() < 4.0
        assert early.evaluations.min() < steps  # the exit is not simply switched off


def test_the_last_step_returns_the_clean_prediction(gaussian):
    """The last step goes to zero noise at first order: the image is the clean prediction of the last
    evaluation, made before the cleanest timestep when the prediction moved by less than the tolerance over
    the last step (rtol 1), at the cleanest timestep when it did not (rtol 0.1: over a last step of 4 in
    log-SNR the prediction grows by a third)."""
    diffusion, denoise, noise = gaussian
    clean, last_timestep = diffusion._clean_predictor(denoise), {}
    for rtol in (1.0, 0.1):
        seen = []

        def recording(x, alpha, sigma, t):
            seen.append((float(t[0]), clean(x, alpha, sigma, t)))
            return seen[-1][1]

        result = AdaptiveSampler(diffusion.log_snr(), AdaptiveSettings(rtol=rtol, atol=rtol / 10)).sample(recording, noise[:1])
        assert torch.equal(result.samples, seen[-1][1])
        last_timestep[rtol] = seen[-1][0]
    assert last_timestep[1.0] > 10 and last_timestep[0.1] < 1e-9


def test_an_end_log_snr_returns_the_clean_prediction_there(gaussian):
    """end_log_snr stops the integration at that log-SNR (the last evaluation is there, at the timestep of
    that log-SNR) and returns the clean prediction; bad ends are refused by name."""
    diffusion, denoise, noise = gaussian
    clean, seen = diffusion._clean_predictor(denoise), []

    def recording(x, alpha, sigma, t):
        seen.append((t.clone(), clean(x, alpha, sigma, t)))
        return seen[-1][1]

    schedule = diffusion.log_snr()
    result = AdaptiveSampler(schedule, AdaptiveSettings(rtol=1e-3, atol=1e-4, end_log_snr=2.0)).sample(recording, noise[:1])
    end_timestep = schedule.timestep(torch.tensor([2.0], dtype=torch.float64))
    assert torch.allclose(seen[-1][0].double(), end_timestep, atol=1e-3) and torch.equal(result.samples, seen[-1][1])
    assert all(float(t[0]) >= float(end_timestep[0]) - 1e-3 for t, _ in seen)  # nothing beyond the end
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="end_log_snr="):
            AdaptiveSettings(end_log_snr=bad)
    with pytest.raises(ValueError, match="end_log_snr=-9.0; this schedule's log-SNR runs from -5.06"):
        adaptive(*gaussian, end_log_snr=-9.0)


def test_the_commands_refuse_a_bad_end_log_snr(capsys):
    from sampling.commands.evaluate import main as eval_main
    from sampling.commands.sample import main as sample_main

    for main, kind in ((sample_main, "images"), (eval_main, "images")):
        with pytest.raises(SystemExit) as exit_info:
            main([kind, "--ckpt", "x.ckpt", "--sampler", "adaptive", "--end-log-snr", "nan"])
        assert exit_info.value.code == 2
        assert "argument --end-log-snr: 'nan': need a finite number" in capsys.readouterr().err
