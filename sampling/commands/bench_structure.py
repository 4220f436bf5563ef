"""The `structure` suite of qgfd-bench: the training step of every structure study arm (random-walk features,
QGFD over the noisy, signal-scaled, predicted or mixed graph, the small alpha) against vanilla's, at MOSES size
(38 atoms, the moses-cpu network), the arms taking turns so drift in the machine's speed falls on all of them.
This is the cost side of the structure studies' goal (at most 1.1x vanilla's step)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from models import GraphTransformerConfig
from qgfd_gen.attention import QGFDConfig

from .bench_molecules import timing_model, train_step
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


def structure_ratios(rows: list[dict]) -> dict[str, float]:
    return {f"structure_step_{r['arm']}_vs_vanilla": r["step_ratio_vs_vanilla"] for r in rows if r["arm"] != "vanilla"}


def print_structure_table(rows: list[dict]) -> None:
    print(f"{'arm':18}{'step ms':>10}{'x vanilla':>11}")
    for r in rows:
        print(f"{r['arm']:18}{r['train_step_ms']:>10.1f}{r['step_ratio_vs_vanilla']:>11.3f}")
