"""A learning-rate sweep study end to end (a run that diverges is reported as diverged, not as an error), and the
sweep report's measures on hand-made rows."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import TINY_UNET
from sampling.commands.study import main
from sampling.studies.plan import read_study
from sampling.studies.sweep_report import seed_measures

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["sampling.studies.reporting", "sampling.studies.sweep"]

pytestmark = pytest.mark.slow


def test_a_learning_rate_study_reports_a_diverged_run_as_diverged(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = {"seed_everything": 0,
            "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 100, "enable_progress_bar": False,
                        "enable_model_summary": False, "log_every_n_steps": 1, "gradient_clip_val": 1.0},
            "model": {"class_path": "models.ImageDiffusion",
                      "init_args": {"unet": {**TINY_UNET, "attention": "qgfd"},
                                    "qgfd": {"alpha": 0.5, "iterations": 2, "transition": "grid"},
                                    "schedule": {"num_train_timesteps": 20}, "val_timesteps": 2,
                                    "optimizer": {"lr": 1e-3, "warmup_steps": 0, "ema_decay": 0.9}}},
            "data": {"class_path": "datamodules.DigitsDataModule", "init_args": {"image_size": 8, "batch_size": 16}}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    study = {"name": "lr", "base": "base.yaml", "seeds": [0], "budget": {"steps": 24},
             "arms": {"vanilla": {"model.init_args.unet.attention": "vanilla"}, "qgfd": {}},
             "sweep": {"model.init_args.optimizer.lr": [1.0e-3, 1.0e6]}, "trainer": {"limit_val_batches": 1},
             "evaluate": False,
             "goal": {"metrics": ["largest_stable_lr"], "against": ["vanilla"], "margin": 0.1,
                      "pairs": [["qgfd", "vanilla"]]}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    assert list(read_study("study.yaml").arms) == ["vanilla_lr0.001", "vanilla_lr1e+06", "qgfd_lr0.001", "qgfd_lr1e+06"]
    assert main(["run", "-c", "study.yaml", "--out", "out", "--threads", "1"]) == 0
    rows = {r["arm"]: r for r in json.loads((tmp_path / "out" / "study.json").read_text())["rows"]}
    for arm in ("vanilla", "qgfd"):
        high, low = rows[f"{arm}_lr1e+06"], rows[f"{arm}_lr0.001"]
        assert high["diverged"] is True and high["stopped_by"] == "TrainingDiverged" and high["nonfinite_steps"] >= 20
        assert low["diverged"] is False and low["final_loss_last10"] < low["initial_loss"]
        assert low["min_entropy_pT"] > 0 and low["max_grad_norm"] > 0
        assert not (tmp_path / "out" / "runs" / f"{arm}_lr1e+06" / "seed0" / "final.ckpt").exists()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| vanilla | " in report and "(1/1 div.)" in report and "largest stable" in report
    assert "**Verdict: no arm meets the goal.**" in report  # both are stable at 1e-3 and diverge at 1e6
    assert (tmp_path / "out" / "loss_vs_sweep.png").exists() and (tmp_path / "out" / "entropy_over_training.png").exists()
    capsys.readouterr()
    assert main(["run", "-c", "study.yaml", "--out", "out"]) == 0  # a rerun: the diverged runs count as done
    assert "4 already done" in capsys.readouterr().out


def row(initial: float, final: float, diverged: bool = False) -> dict:
    return {"initial_loss": initial, "final_loss_last10": final, "diverged": diverged}


def test_sensitivity_largest_stable_value_and_best_loss_by_hand():
    runs = {1e-3: row(1.0, 0.5), 1e-2: row(1.0, 0.3), 1e-1: row(1.0, 2.0), 1.0: row(1.0, float("nan"), True)}
    found = seed_measures(runs, [1e-3, 1e-2, 1e-1, 1.0])
    # min(L, L0): 0.5, 0.3, 1.0 (above L0: diverged, counts L0), 1.0 (stopped); best 0.3
    assert found["sensitivity"] == pytest.approx((0.5 + 0.3 + 1.0 + 1.0) / 4 - 0.3)
    assert found["largest_stable"] == 1e-2 and found["best_loss"] == 0.3
    missing = seed_measures({1e-3: row(1.0, 0.5)}, [1e-3, 1e-2])
    assert missing == {"sensitivity": None, "largest_stable": None, "best_loss": None}
