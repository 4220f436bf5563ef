"""The on-paper prediction: its arithmetic on a hand-made step cost, and the operator count of a real small step."""

from __future__ import annotations

import pytest
import torch

from sampling.benchmarks.predict import (H100_BF16_DENSE_FLOPS, LAUNCH_SECONDS, OperatorCounter, predict)

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py); named apart
# from tests/models/training/test_predict.py, since test modules share one namespace
COVERS = ["sampling.benchmarks.predict"]


def test_the_prediction_takes_the_lower_of_the_flop_and_launch_ceilings():
    cost = {"config": "cifar", "parameters": 1_000_000, "batch": 128, "probe_batch": 2, "probe_flops": 1e9,
            "probe_step_bytes": 2**20, "operators_per_step": 1000}
    found = predict(cost)
    flops = 64e9
    assert found["step_tflops"] == pytest.approx(flops / 1e12)
    launch = 1 / (1000 * LAUNCH_SECONDS)
    assert found["steps_per_second"] == [round(min(0.2 * H100_BF16_DENSE_FLOPS / flops, launch), 2),
                                         round(min(0.4 * H100_BF16_DENSE_FLOPS / flops, launch), 2)]
    assert found["bound"] == "launches" and found["memory_gib"] == round((20e6 + 64 * 2**20) / 2**30, 1)
    assert found["hours_to_budget"][0] == round(800_000 / found["steps_per_second"][1] / 3600, 1)


def test_operators_are_counted():
    with OperatorCounter() as counter:
        x = torch.ones(3)
        (x + x).sum()
    assert counter.count == 3
