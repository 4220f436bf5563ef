"""What an early exit can save on the digits model, and how close the workbench's exit rule comes.

For DDIM at each step count, every step's clipped clean prediction is recorded for every sample. Then, per
tolerance, from the same recorded chains:
  rule:   the workbench's exit rule (`--exit-tol`) replayed step by step: the sampler's own `EarlyExit` object
          fed the recorded predictions; it matches the sweep's exit rows (same seed);
  oracle: each sample leaves at the first step whose clean prediction is within tau 8-bit levels (RMS) of the
          image the full chain ends with. No exit that returns the clean prediction can leave earlier and stay
          within tau, so the oracle bounds what any such rule saves at that tolerance.
Each row gives the evaluations saved, the FID of the returned images (digits classifier), how far they are
from the full chain's (RMS levels, mean and 95th percentile) and the median log-SNR of the exits.

    python docs/results/sweeps/digits-exit-oracle/oracle_exit.py --steps 20,50,100 --num-samples 1000
"""

import argparse
import json
import time
from pathlib import Path

import torch

from models.processes.early_exit import EarlyExit
from models.training.image_diffusion import initial_noise
from models.training.loading import load_model
from qgfd_gen.io import write_json
from models.measures.image_metrics import ImageQuality

TOLERANCES = (0.5, 1, 2, 4, 8)


def traced_ddim(model, steps: int, num: int, batch_size: int, seed: int):
    """(clean predictions [n, S, C, H, W] in [-1, 1], final images [n, C, H, W] in [0, 1], timesteps)."""
    net = model.sampling_network(True)
    predictions, finals = [], []
    with torch.no_grad():
        for _, x in initial_noise(seed, num, batch_size, model.image_shape):
            scheduler, chain = model.diffusion.sampler_scheduler("ddim", steps), []
            for t in scheduler.timesteps:
                timesteps = torch.full((x.shape[0],), int(t), dtype=torch.long)
                output = net(x, timesteps).sample
                chain.append(model.diffusion.predicted_clean(x, output, timesteps))
                x = scheduler.step(output, t, x, eta=0.0).prev_sample
            predictions.append(torch.stack(chain, 1))
            finals.append(x.clamp(-1, 1).add(1).div(2))
    return torch.cat(predictions), torch.cat(finals), [int(t) for t in scheduler.timesteps]


def replay_rule(raw, timesteps, log_snr, tol: float):
    """The step index at which each sample leaves under --exit-tol tol, or -1: the sampler's own `EarlyExit`
    fed the recorded predictions (a sample that left is not asked again, as in GaussianDiffusion.reverse)."""
    exit_at = torch.full((raw.shape[0],), -1)
    rule = EarlyExit(tol, float(log_snr[0]))
    alive = torch.arange(raw.shape[0])
    for i, t in enumerate(timesteps[:-1]):
        settled = rule.settled(raw[alive, i], float(log_snr[t]))
        if settled is not None and bool(settled.any()):
            exit_at[alive[settled]] = i
            alive = alive[~settled]
            rule.keep(~settled)
            if not len(alive):
                break
    return exit_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="runs/digits/checkpoints/last.ckpt")
    parser.add_argument("--feature-extractor", default="data/digits-classifier.pt")
    parser.add_argument("--real-stats", default="data/fid-stats-DigitsDataModule-16px-custom-5dfa0135e5c5d114-1000.pt")
    parser.add_argument("--steps", default="20,50,100")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results.json"))
    parser.add_argument("--cache", default=None, help="a folder keeping the recorded chains (a rerun replays them)")
    args = parser.parse_args()
    model = load_model(args.ckpt, "images", torch.device("cpu"))
    quality = ImageQuality(torch.jit.load(args.feature_extractor).eval(), want_fid=True, want_is=False)
    quality.load_real_state(torch.load(args.real_stats, weights_only=True))
    log_snr = model.diffusion.log_snr().lambdas

    def fid(images):
        quality.reset_fake()
        for lo in range(0, len(images), args.batch_size):
            quality.update_fake(images[lo:lo + args.batch_size])
        return float(quality.compute()["fid"])

    out = Path(args.out)
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    for steps in (int(s) for s in args.steps.split(",")):
        start = time.perf_counter()
        cached = Path(args.cache or ".") / f"chains-{steps}-{args.num_samples}-{args.seed}.pt"
        if args.cache and cached.exists():  # replayed: no network evaluation, no sampling time to report
            raw, final, timesteps = torch.load(cached, weights_only=True)
            start = None
        else:
            raw, final, timesteps = traced_ddim(model, steps, args.num_samples, args.batch_size, args.seed)
            if args.cache:
                Path(args.cache).mkdir(parents=True, exist_ok=True)
                torch.save((raw, final, timesteps), cached)
        images = raw.clamp(-1, 1).add(1).div(2)
        n = len(final)
        seconds = None if start is None else time.perf_counter() - start

        def score(kind, tol, exit_at):
            exits, first = exit_at >= 0, exit_at.clamp_min(0)
            returned = torch.where(exits[:, None, None, None], images[torch.arange(n), first], final)
            moved = 255 * (returned - final).pow(2).flatten(1).mean(1).sqrt()
            evaluations = torch.where(exits, exit_at + 1, torch.full((n,), steps)).float()
            lam = log_snr[torch.tensor(timesteps)[first]].float()
            return {"kind": kind, "tolerance": tol, "steps": steps, "num_samples": n, "seed": args.seed,
                    "network_evaluations": evaluations.mean().item(),
                    "saved_pct": 100 * (1 - evaluations.mean().item() / steps), "fid": fid(returned),
                    "exited_pct": 100 * exits.float().mean().item(), "moved_rms_mean": moved.mean().item(),
                    "moved_rms_p95": moved.quantile(0.95).item(),
                    "exit_log_snr_median": lam[exits].median().item() if exits.any() else None}

        distance = 255 * (images - final[:, None]).pow(2).flatten(2).mean(2).sqrt()  # [n, S]
        new = [{"kind": "full chain", "tolerance": None, "steps": steps, "num_samples": n, "seed": args.seed,
                "network_evaluations": steps, "saved_pct": 0.0, "fid": fid(final), "seconds": seconds,
                "last_clean_prediction_fid": fid(images[:, -1]),
                "last_clean_prediction_moved_rms_mean": distance[:, -1].mean().item()}]
        for tol in TOLERANCES:
            new.append(score("rule", tol, replay_rule(raw, timesteps, log_snr, tol)))
        for tol in TOLERANCES:
            within = distance < tol
            new.append(score("oracle", tol, torch.where(within.any(1), within.float().argmax(1), torch.full((n,), -1))))
        rows = [r for r in rows if (r["steps"], r["num_samples"]) != (steps, n)] + new
        write_json(out, {"rows": rows})  # a temporary name, then renamed
        for r in new:
            print(f"{r['kind']:>10} {str(r['tolerance']):>4} steps {steps:4d}: saved {r['saved_pct']:5.1f}%  "
                  f"FID {r['fid']:.3f}  moved {r.get('moved_rms_mean', 0):.2f}", flush=True)


if __name__ == "__main__":
    main()
