"""Predictions, on paper, of what the published-scale configs do on one H100, for the first device run to confirm or
correct: the FLOPs of one training step counted here on the CPU (torch's FlopCounterMode: matrix products and
convolutions, forward and backward, at a probe batch and scaled to the config's), the memory (parameters, their
gradients, AdamW's two moments and the EMA copy, 20 bytes a parameter, plus the tensors one step creates, counted
tensor by tensor at the probe batch in float32 and scaled: bf16 autocast needs less), and from the H100's published
dense bf16 throughput at an assumed range of model FLOPs utilisation (MFU), the steps per second and the hours to
the config's published budget.

Why a range of MFU: small convolutions at 32x32 and attention over 64 nodes keep a GPU far from its peak; 20-40% is
what well-tuned diffusion U-Nets report, and the first device run (qgfd-bench gpu) measures the real figure. Small
models are bound by kernel launches, not FLOPs: the operators one step dispatches are counted too, and at
LAUNCH_SECONDS each (eager PyTorch's per-operator overhead on a GPU, without CUDA graphs) they give a second
ceiling on the steps per second; the prediction is the lower of the two.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.utils._python_dispatch

# NVIDIA's H100 SXM datasheet: dense BF16 tensor-core throughput, and the memory of the 80 GB part
H100_BF16_DENSE_FLOPS = 989.4e12
H100_MEMORY_GIB = 80
MFU_RANGE = (0.2, 0.4)
LAUNCH_SECONDS = 10e-6  # per dispatched operator, eager mode
BYTES_PER_PARAMETER = 20  # fp32 weights, gradients, AdamW's two moments, the EMA copy
# each config's published budget in optimiser steps, and where it comes from
BUDGETS = {"cifar": (800_000, "DDPM (Ho et al. 2020): 800k steps at batch 128"),
           "celeba": (500_000, "the config's max_steps (DDIM's CelebA 64x64 recipe)"),
           "planar": (200_000, "100,000 epochs of 2 batches (the config; DiGress / DeFoG scale)"),
           "moses": (1_670_000, "300 epochs of about 5,570 batches of 256 (the config; DiGress's MOSES)")}


def step_cost(name: str, probe_batch: int = 2) -> dict[str, Any]:
    """FLOPs and created bytes of one training step (forward, backward) at `probe_batch`, and the parameters."""
    from torch.utils.flop_counter import FlopCounterMode

    from qgfd_gen.memory import MemoryTracker

    from .gpu import build_model, load_config
    from .gpu_inputs import training_inputs

    config = load_config(name)
    model = build_model(config, "qgfd", tiny=False)
    inputs, _, _ = training_inputs(config, model, probe_batch, 1, False, None)
    if "datamodule" in inputs:  # the data set is here (the synthetic graphs always are)
        datamodule = inputs["datamodule"]
        if hasattr(model, "diffusion") and hasattr(datamodule, "statistics"):
            model.diffusion.set_statistics(*datamodule.statistics())
        batch = next(iter(datamodule.train_dataloader()))
    else:
        batch = next(iter(inputs["train_dataloaders"]))
    batch = batch[0] if getattr(model, "kind", "") == "images" and isinstance(batch, (list, tuple)) else batch
    counter, operators = FlopCounterMode(display=False), OperatorCounter()
    with MemoryTracker() as tracker, counter, operators:
        loss = model.training_step(batch, 0)
        loss.backward()
    return {"config": name, "parameters": sum(p.numel() for p in model.network.parameters()),
            "batch": int(config["data"]["init_args"].get("batch_size", 64)), "probe_batch": probe_batch,
            "probe_flops": counter.get_total_flops(), "probe_step_bytes": tracker.peak_bytes,
            "operators_per_step": operators.count}


class OperatorCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """How many operators a block dispatches (each a kernel launch, or more, on a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def predict(cost: dict[str, Any]) -> dict[str, Any]:
    """Steps per second, memory and hours to the published budget on one H100, from one config's step cost."""
    scale = cost["batch"] / cost["probe_batch"]
    flops = cost["probe_flops"] * scale
    launch_bound = 1 / (cost["operators_per_step"] * LAUNCH_SECONDS)
    slow, fast = (min(mfu * H100_BF16_DENSE_FLOPS / flops, launch_bound) for mfu in MFU_RANGE)
    steps, source = BUDGETS[cost["config"]]
    memory = (BYTES_PER_PARAMETER * cost["parameters"] + cost["probe_step_bytes"] * scale) / 2**30
    return {**cost, "step_tflops": flops / 1e12, "steps_per_second": [round(slow, 2), round(fast, 2)],
            "memory_gib": round(memory, 1), "fits_h100": memory < H100_MEMORY_GIB, "budget_steps": steps,
            "budget_source": source, "hours_to_budget": [round(steps / fast / 3600, 1), round(steps / slow / 3600, 1)],
            "mfu_assumed": list(MFU_RANGE), "launch_bound_steps_per_second": round(launch_bound, 1),
            "bound": "launches" if launch_bound < MFU_RANGE[1] * H100_BF16_DENSE_FLOPS / flops else "FLOPs"}


def prediction_suite(configs: tuple[str, ...], probe_batch: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    rows = []
    for name in configs:
        say(f"counting one training step of {name} at batch {probe_batch}")
        rows.append(predict(step_cost(name, probe_batch)))
    return rows


def print_prediction_table(rows: list[dict[str, Any]]) -> None:
    print("config  params(M)  batch  TFLOP/step  steps/s (MFU 20-40%)  memory GiB  hours to budget")
    for r in rows:
        print(f"{r['config']:<7} {r['parameters'] / 1e6:9.1f} {r['batch']:6d} {r['step_tflops']:11.3f} "
              f"{r['steps_per_second'][0]:9.2f}-{r['steps_per_second'][1]:<9.2f} {r['memory_gib']:11.1f} "
              f"{r['hours_to_budget'][0]:7.1f}-{r['hours_to_budget'][1]:<7.1f} ({r['budget_steps']:,} steps)")
