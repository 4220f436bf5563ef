"""The `structure` suite of qgfd-bench: the training step of every structure study arm (random-walk features,
QGFD over the noisy, signal-scaled, predicted or mixed graph, the small alpha) against vanilla's, at MOSES size
(38 atoms, the moses-cpu network), the arms taking turns so drift in the machine's speed falls on all of them.
This is the cost side of the structure studies' goal (at most 1.1x vanilla's step). With a study file
(`--study`), the arms are that study's (graph or image studies; a sweep study's named arms), each built from its
base config with the arm's overrides and timed on a batch of the config's own data at its batch size: a study's
cost measured apart from its runs, which may share the machine (two studies at one thread each)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from models import GraphTransformerConfig
from qgfd_gen.attention import QGFDConfig
from qgfd_gen.errors import UsageError

from .gpu_inputs import config_datamodule
from .molecules import timing_model, train_step, train_step_on
from .timing import interleaved_median_ms

# arm -> (network switches, QGFD settings): the arms of configs/studies/moses-pilot.yaml and moses-cpu.yaml
STRUCTURE_ARMS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "vanilla": ({}, {"alpha": 0.0}),
    "rrwp": ({"rrwp_steps": 8}, {"alpha": 0.0}),
    "qgfd-noisy": ({}, {"alpha": 0.5}),
    "qgfd-signal": ({"alpha_by_signal": True}, {"alpha": 0.5}),
    "qgfd-predicted": ({"graph": "predicted"}, {"alpha": 0.5}),
    "qgfd-mixed": ({"graph": "mixed"}, {"alpha": 0.5}),
    "qgfd-small": ({}, {"alpha": 0.01, "iterations": 4}),
    "qgfd-small+rrwp": ({"rrwp_steps": 8}, {"alpha": 0.01, "iterations": 4}),
}


def structure_suite(batch: int, repeats: int, progress: Callable[[str], None],
                    network: GraphTransformerConfig | None = None, device: str = "cpu") -> list[dict]:
    network = network or GraphTransformerConfig()
    steps = {}
    for arm, (switches, qgfd) in STRUCTURE_ARMS.items():
        model = timing_model("zinc", dataclasses.replace(network, **switches),
                             QGFDConfig(**{"iterations": 3, "transition": "adjacency", **qgfd}), device)
        steps[arm] = train_step(model, batch, device)
    progress(f"structure: {len(steps)} arms' training steps in turn, batch {batch}, {repeats} repeats")
    step_ms = interleaved_median_ms(steps, repeats)
    return [{"suite": "structure", "arm": arm, "batch": batch, "train_step_ms": ms,
             "step_ratio_vs_vanilla": ms / step_ms["vanilla"], "device": device} for arm, ms in step_ms.items()]


def study_suite(study: str, repeats: int, progress: Callable[[str], None]) -> list[dict]:
    """Every arm of a study timed in turn on the same batch of the base config's data: graph studies (molecules or
    synthetic graphs; the chain's noise limit from that data, molecule sets capped as the gpu suite caps them) and
    image studies. A sweep study's arms differ from their named arm only in the swept value (a learning rate, say),
    which costs nothing per step, so only the named arms are timed, at the first swept value."""
    from sampling.studies.plan import read_study

    plan = read_study(study)
    base = plan.run_config(plan.baseline, plan.seeds[0], Path("."))
    batch = int(base["data"]["init_args"]["batch_size"])
    progress(f"structure: {plan.name}'s data at batch {batch}")
    datamodule = config_datamodule(base, batch, False, None, None)
    datamodule.prepare_data()
    datamodule.setup("fit")
    first = next(iter(datamodule.train_dataloader()))
    arms = {arm: arm for arm in plan.arms}
    if plan.sweep:
        first_value = next(iter(plan.sweep.values()))[0]
        arms = {base: arm for arm, (base, value) in plan.sweep_of.items() if value == first_value}
    baseline = plan.sweep_of[plan.baseline][0] if plan.sweep else plan.baseline
    steps = {}
    for name, arm in arms.items():
        model = plan.build_model(arm)
        if plan.kind == "images":
            steps[name] = image_train_step(model, first)
        else:
            model.diffusion.set_statistics(*datamodule.statistics())
            steps[name] = train_step_on(model, *first, float(model.hparams.edge_weight))
    progress(f"structure: {len(steps)} arms of {plan.name} in turn, {repeats} repeats")
    step_ms = interleaved_median_ms(steps, repeats)
    return [{"suite": "structure", "study": plan.name, "arm": arm, "batch": batch, "train_step_ms": ms,
             "step_ratio_vs_vanilla": ms / step_ms[baseline], "baseline": baseline, "device": "cpu"}
            for arm, ms in step_ms.items()]


def image_train_step(model: Any, batch: Any) -> Callable[[], None]:
    """One optimiser step of an image model's network on this batch, at timesteps and noise fixed by a seed."""
    import torch

    images = batch[0] if isinstance(batch, (list, tuple)) else batch
    generator = torch.Generator().manual_seed(1)
    timesteps = torch.randint(0, model.diffusion.num_timesteps, (images.shape[0],), generator=generator)
    noise = torch.randn(images.shape, generator=generator)
    optimizer = torch.optim.AdamW(model.network.parameters(), lr=1e-6)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.diffusion_loss(images, timesteps, noise).backward()
        optimizer.step()

    return step


def structure_ratios(rows: list[dict]) -> dict[str, float]:
    return {f"structure_step_{r['arm']}_vs_{r.get('baseline', 'vanilla')}": r["step_ratio_vs_vanilla"]
            for r in rows if r["arm"] != r.get("baseline", "vanilla")}


def print_structure_table(rows: list[dict]) -> None:
    print(f"{'arm':18}{'step ms':>10}{'x vanilla':>11}")
    for r in rows:
        print(f"{r['arm']:18}{r['train_step_ms']:>10.1f}{r['step_ratio_vs_vanilla']:>11.3f}")
