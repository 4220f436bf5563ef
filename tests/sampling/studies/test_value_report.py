"""The report of a study sweeping a key other than the learning rate (the depth study's): each arm against the
baseline at the same value, the goal's verdict with `at` and `also_above`, and the plain negative, on hand-made
rows; the goal's new fields checked before anything runs."""

from __future__ import annotations

import shutil

import pytest
import yaml

from conftest import CONFIGS
from qgfd_gen.errors import UsageError
from sampling.studies.plan import read_study
from sampling.studies.request import check_goal_metrics
from sampling.studies.value_report import better_beyond_spread, write_value_report

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["sampling.studies.goal"]


def depth_study(tmp_path, **goal):
    shutil.copy(CONFIGS / "depth-planar.yaml", tmp_path / "base.yaml")
    study = {"name": "depth", "base": "base.yaml", "seeds": [0, 1, 2], "budget": {"steps": 5}, "baseline": "vanilla",
             "arms": {"vanilla": {"model.init_args.qgfd.alpha": 0.0}, "qgfd": {"model.init_args.qgfd.alpha": 0.5},
                      "flat": {"model.init_args.qgfd.alpha": 0.9}},
             "sweep": {"model.init_args.network.layers": [4, 16]}, "evaluate": False,
             "goal": {"metrics": ["val_loss"], "against": ["vanilla"], "at": [16],
                      "also_above": ["consensus_distance_end"], **goal}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return read_study(path)


def rows() -> list[dict]:
    made = []
    for seed in (0, 1, 2):
        jitter = 0.001 * seed
        for layers in (4, 16):
            made.append({"arm": f"vanilla_layers{layers}", "seed": seed, "val_loss": 1.0 + jitter,
                         "consensus_distance_end": 0.05, "effective_rank_end": 1.5})
            # qgfd: better loss at 16 layers in every seed, and further from consensus
            made.append({"arm": f"qgfd_layers{layers}", "seed": seed, "val_loss": 1.0 + jitter - (0.1 if layers == 16 else 0),
                         "consensus_distance_end": 0.08 + jitter, "effective_rank_end": 1.6})
            # flat: same loss, collapsed further at both depths
            made.append({"arm": f"flat_layers{layers}", "seed": seed, "val_loss": 1.0 + jitter + 0.0001 * (seed - 1),
                         "consensus_distance_end": 0.02 + jitter, "effective_rank_end": 1.2})
    return made


def test_the_report_pairs_each_arm_with_the_baseline_at_the_same_value(tmp_path):
    plan = depth_study(tmp_path)
    assert not plan.sweeps_learning_rate
    check_goal_metrics(plan)
    report = write_value_report(tmp_path, plan, rows()).read_text()
    assert "| qgfd | +0 [+0, +0] | -0.1 [-0.1, -0.1] |" in report
    assert "- **qgfd** meets the goal" in report and "**Verdict: qgfd meets the goal.**" in report
    assert "- **flat** does not meet the goal" in report
    assert "more collapsed than vanilla's beyond the seed spread: flat at 4: consensus_distance_end" in report
    assert "Less collapsed than vanilla's beyond the seed spread: qgfd at 4: consensus_distance_end" in report


def test_a_goal_about_some_arms_judges_only_those(tmp_path):
    plan = depth_study(tmp_path, candidates=["flat"])
    report = write_value_report(tmp_path, plan, rows()).read_text()
    assert "Stated before the study ran: one of flat whose" in report and "- **qgfd**" not in report
    assert "**Verdict: no arm meets the goal.**" in report
    with pytest.raises(UsageError, match=r"goal.candidates=\['nobody'\]"):
        depth_study(tmp_path, candidates=["nobody"])


def test_without_the_collapse_guard_a_lower_loss_alone_is_not_enough(tmp_path):
    plan = depth_study(tmp_path)
    made = [dict(r, consensus_distance_end=0.01) if r["arm"].startswith("qgfd") else r for r in rows()]
    report = write_value_report(tmp_path, plan, made).read_text()
    assert "**Verdict: no arm meets the goal.**" in report


def test_better_beyond_spread_follows_the_metrics_direction():
    assert better_beyond_spread({0: 1.0, 1: 1.1, 2: 1.2}, {0: 2.0, 1: 2.1, 2: 2.2}, "val_loss") is True
    assert better_beyond_spread({0: 1.0, 1: 1.1, 2: 1.2}, {0: 2.0, 1: 2.1, 2: 2.2}, "effective_rank_end") is False
    assert better_beyond_spread({0: 1.0, 1: 3.0}, {0: 2.0, 1: 2.0}, "val_loss") is None
    assert better_beyond_spread({0: 1.0}, {0: 2.0}, "val_loss") is None


@pytest.mark.parametrize("goal, message", [({"at": [5]}, r"goal.at=\[5.0\] names values the sweep does not run"),
                                           ({"also_above": ["closeness"]}, r"goal.also_above \['closeness'\]"),
                                           ({"metrics": ["lr_sensitivity"]}, r"goal.metrics \['lr_sensitivity'\]")])
def test_goal_fields_a_depth_sweep_cannot_judge_are_refused(tmp_path, goal, message):
    with pytest.raises(UsageError, match=message):
        check_goal_metrics(depth_study(tmp_path, **goal))
