"""The `molecules` suite of qgfd-bench: the graph denoiser's training step and the sampler's throughput
(molecules per second), QGFD against alpha 0, at QM9 size (9 atoms) and at ZINC / MOSES size (38 atoms).
Weights are random (speed does not depend on them); the chain's statistics are uniform."""

from __future__ import annotations

from typing import Any, Callable

import torch

from models import GraphTransformerConfig, MoleculeDiffusion, OptimizerConfig
from qgfd_gen.attention import QGFDConfig

from .timing import interleaved_median_ms

SIZES = {"qm9": 9, "zinc": 38}


def timing_model(dataset: str, network: GraphTransformerConfig, qgfd: QGFDConfig, device: str) -> MoleculeDiffusion:
    """A seeded model with the uniform stand-in statistics: what the molecule and structure suites time."""
    torch.manual_seed(0)
    model = MoleculeDiffusion(dataset=dataset, network=network, qgfd=qgfd,
                              optimizer=OptimizerConfig(lr=1e-4, warmup_steps=1))
    set_uniform_statistics(model)
    return model.to(device)


def set_uniform_statistics(model: MoleculeDiffusion) -> None:
    """A stand-in noise limit for timing: uniform atom types, mostly no bond, molecules of two thirds the
    vocabulary's largest size and up."""
    n = model.vocab.max_atoms
    sizes = torch.zeros(n + 1)
    sizes[max(1, n * 2 // 3) :] = 1
    model.diffusion.set_statistics(torch.ones(len(model.vocab)), torch.tensor([8.0, 1.0, 0.3, 0.1]), sizes)


def random_molecules(model: MoleculeDiffusion, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` random graphs of the vocabulary's largest size, the last quarter of atoms padded, single bonds at
    random: inputs of the real shapes, for speed and memory."""
    generator = torch.Generator().manual_seed(seed)
    n = model.vocab.max_atoms
    atoms = torch.randint(0, len(model.vocab), (count, n), generator=generator)
    atoms[:, n * 3 // 4 :] = -1
    bonds = torch.randint(0, 2, (count, n, n), generator=generator)
    bonds = torch.triu(bonds, 1) + torch.triu(bonds, 1).transpose(1, 2)
    return atoms, bonds


def _training_batch(model: MoleculeDiffusion, batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    atoms, bonds = random_molecules(model, batch)
    return atoms.to(device), bonds.to(device)


def train_step(model: MoleculeDiffusion, batch: int, device: str) -> Callable[[], None]:
    return train_step_on(model, *_training_batch(model, batch, device))


def train_step_on(model: Any, atoms: torch.Tensor, bonds: torch.Tensor, edge_weight: float = 5.0) -> Callable[[], None]:
    """One optimiser step of a graph chain model's denoiser on this batch, at timesteps fixed by a seed."""
    optimizer = torch.optim.AdamW(model.denoiser.parameters(), lr=1e-6)
    t = torch.randint(1, model.diffusion.num_timesteps + 1, (atoms.shape[0],), generator=torch.Generator().manual_seed(1))
    t = t.to(atoms.device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.diffusion.loss(model.denoiser, atoms, bonds, t, edge_weight=edge_weight)[0].backward()
        optimizer.step()

    return step


def _sampler(model: MoleculeDiffusion, num: int, steps: int) -> Callable[[], None]:
    return lambda: model.sample(num, steps=steps, seed=0, batch_size=num)


def molecule_suite(datasets: list[str], batch: int, num: int, steps: int, repeats: int, progress: Callable[[str], None],
                   network: GraphTransformerConfig | None = None, device: str = "cpu") -> list[dict]:
    """Per dataset, the alpha-0 and QGFD models' training steps take turns (so drift in the machine's speed
    falls on both), then their sampling of `num` molecules does (a third as many repeats)."""
    network = network or GraphTransformerConfig()
    rows = []
    for dataset in datasets:
        progress(f"molecules {dataset}: training steps, alpha 0 and 0.5 in turn")
        models = {alpha: timing_model(dataset, network, QGFDConfig(alpha=alpha, iterations=3, transition="adjacency"),
                                      device) for alpha in (0.0, 0.5)}
        step_ms = interleaved_median_ms({alpha: train_step(model, batch, device) for alpha, model in models.items()},
                                        repeats)
        progress(f"molecules {dataset}: sampling {num}, alpha 0 and 0.5 in turn")
        sample_ms = interleaved_median_ms({alpha: _sampler(model, num, steps) for alpha, model in models.items()},
                                          max(1, repeats // 3))
        for alpha in models:
            rows.append({"suite": "molecules", "dataset": dataset, "max_atoms": SIZES[dataset], "alpha": alpha,
                         "batch": batch, "train_step_ms": step_ms[alpha], "sample_num": num, "sample_steps": steps,
                         "molecules_per_second": num / (sample_ms[alpha] / 1000), "device": device})
    return rows


def molecule_ratios(rows: list[dict]) -> dict[str, float]:
    ratios = {}
    for dataset in {r["dataset"] for r in rows}:
        plain = next(r for r in rows if r["dataset"] == dataset and r["alpha"] == 0.0)
        qgfd = next(r for r in rows if r["dataset"] == dataset and r["alpha"] > 0)
        ratios[f"molecule_step_qgfd_vs_vanilla_{dataset}"] = qgfd["train_step_ms"] / plain["train_step_ms"]
        ratios[f"molecule_sampling_qgfd_vs_vanilla_{dataset}"] = plain["molecules_per_second"] / qgfd["molecules_per_second"]
    return ratios


def print_molecule_table(rows: list[dict]) -> None:
    print(f"{'dataset':8}{'alpha':>6}{'step ms':>10}{'mol/s':>10}")
    for r in rows:
        print(f"{r['dataset']:8}{r['alpha']:>6.1f}{r['train_step_ms']:>10.1f}{r['molecules_per_second']:>10.1f}")
    for name, value in sorted(molecule_ratios(rows).items()):
        print(f"{name}: {value:.3f}")
