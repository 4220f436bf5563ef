"""qgfd-study on a tiny digits config: two arms, two seeds, three training steps, four samples."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from conftest import CONFIGS, TINY_UNET
from qgfd_gen.provenance import code_version
from sampling.studies import runs as study_runs
from sampling.commands.study import main
from sampling.studies.plan import read_study
from sampling.studies.curves import loss_curve
from sampling.studies.report import paired_interval

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = [
    "sampling.commands.study",
    "sampling.studies.cost",
    "sampling.studies.curves",
    "sampling.studies.engine",
    "sampling.studies.jobs",
    "sampling.studies.notes",
    "sampling.studies.plan",
    "sampling.studies.plots",
    "sampling.studies.report",
    "sampling.studies.request",
    "sampling.studies.runs",
    "sampling.studies.status",
    "sampling.studies.table",
]

pytestmark = pytest.mark.slow


def write_study(tmp_path: Path, **changes) -> Path:
    base = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 100, "enable_progress_bar": False,
                    "enable_model_summary": False, "log_every_n_steps": 1},
        "model": {"class_path": "models.ImageDiffusion",
                  "init_args": {"unet": {**TINY_UNET, "attention": "qgfd"},
                                "qgfd": {"alpha": 0.5, "iterations": 3, "transition": "grid"},
                                "schedule": {"num_train_timesteps": 20}, "val_timesteps": 2,
                                "optimizer": {"lr": 1e-3, "warmup_steps": 1, "ema_decay": 0.9}}},
        "data": {"class_path": "datamodules.DigitsDataModule", "init_args": {"image_size": 8, "batch_size": 16}},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    study = {"name": "tiny", "base": "base.yaml", "seeds": [0, 1], "budget": {"steps": 3},
             "arms": {"vanilla": {"model.init_args.unet.attention": "vanilla"}, "qgfd": {}},
             "trainer": {"limit_val_batches": 1},
             "evaluate": {"num_samples": 4, "steps": [2], "metrics": ["nll"], "nll_images": 4, "nll_timesteps": 2,
                          "batch_size": 4}}
    study.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def test_a_study_writes_rows_table_and_plots_and_resumes_after_an_interruption(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path, out = write_study(tmp_path), tmp_path / "out"
    assert main(["check", "-c", str(path), "--out", str(out)]) == 0  # the plan, and nothing written
    plan = capsys.readouterr().out
    assert not out.exists() and plan.count(": to train") == 4 and "4 of 4 runs still to do" in plan
    trained: list[tuple[str, int]] = []
    real_train = study_runs.train

    def train_then_stop(run):
        if trained:  # the second run: interrupted as by Ctrl+C, after the first run finished
            raise KeyboardInterrupt
        trained.append((run.arm, run.seed))
        return real_train(run)

    monkeypatch.setattr(study_runs, "train", train_then_stop)
    capsys.readouterr()
    assert main(["run", "-c", str(path), "--out", str(out)]) == 130  # as a shell reports Ctrl+C, in one line
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: interrupted")
    first = out / "runs" / "vanilla" / "seed0" / "final.ckpt"
    stamp = first.stat().st_mtime_ns
    assert len(json.loads((out / "study.json").read_text())["rows"]) == 1
    (out / "report.md").unlink()
    assert main(["report", "-c", str(path), "--out", str(out)]) == 0  # trains nothing (train would stop)
    assert "| vanilla | 1 |" in (out / "report.md").read_text() and len(trained) == 1
    assert main(["report", "-c", str(path), "--out", str(tmp_path / "empty")]) == 2
    assert "report: " in capsys.readouterr().err and not (tmp_path / "empty").exists()
    capsys.readouterr()
    assert main(["check", "-c", str(path), "--out", str(out)]) == 0
    plan = capsys.readouterr().out
    assert "vanilla              seed 0: done" in plan and "3 of 4 runs still to do; at the finished runs' pace" in plan
    from sampling.studies import status as study_status
    with monkeypatch.context() as patched:  # a known pace, so the estimate's arithmetic shows
        patched.setattr(study_status, "run_minutes", lambda out, rows: 10.0)
        for jobs, expected in (("1", "about 30 min\n"), ("2", "about 20 min with --jobs 2"), ("3", "about 10 min")):
            assert main(["check", "-c", str(path), "--out", str(out), "--jobs", jobs]) == 0
            assert expected in capsys.readouterr().out, jobs  # 3 runs left, `jobs` at a time

    calls: list[tuple[str, int]] = []

    def counting_train(run):
        calls.append((run.arm, run.seed))
        return real_train(run)

    monkeypatch.setattr(study_runs, "train", counting_train)
    assert main(["run", "-c", str(path), "--out", str(out)]) == 0
    assert calls == [("qgfd", 0), ("vanilla", 1), ("qgfd", 1)]  # the finished run is not retrained
    assert first.stat().st_mtime_ns == stamp

    rows = json.loads((out / "study.json").read_text())["rows"]
    assert sorted((r["arm"], r["seed"]) for r in rows) == [("qgfd", 0), ("qgfd", 1), ("vanilla", 0), ("vanilla", 1)]
    for row in rows:
        assert row["steps"] == 3 and row["seconds_per_step"] > 0 and row["step_memory_mb"] > 0
        assert row["nll_bpd"] > 0 and row["val_loss"] > 0 and row["train_loss"] > 0 and row["parameters"] > 0
        assert row["resumed"] is False and row["code"] == code_version()  # the commit the test runs
    with open(out / "study.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    report = (out / "report.md").read_text()
    assert f"Trained by code `{code_version()}`." in report
    assert "| vanilla | 2 |" in report and "| qgfd | 2 |" in report and " ± " in report
    assert "qgfd − " not in report and "| qgfd | " in report.split("Difference from vanilla")[1]
    for plot in ("quality.png", "loss_curves.png", "cost.png", "residuals.png"):
        assert (out / plot).stat().st_size > 1000 and f"({plot})" in report
    # the QGFD arm's run recorded its residuals per iteration; the vanilla arm has no QGFD layer
    residuals = json.loads(next((out / "runs" / "qgfd" / "seed0" / "logs").glob("version_*/qgfd_residuals.json")).read_text())
    assert len(next(iter(residuals[-1]["layers"].values()))) == 3
    assert not list((out / "runs" / "vanilla" / "seed0" / "logs").glob("version_*/qgfd_residuals.json"))


def test_a_bad_override_key_names_the_key_and_the_valid_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_study(tmp_path, arms={"a": {"model.init_args.qgfd.alpah": 0.1}, "b": {}})
    assert main(["run", "-c", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "'alpah'" in err and "alpha, alpha_mode" in err
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("change, message", [
    ({"budget": {"steps": 0}}, "budget.steps=0"),
    ({"budget": {"epochs": 3}}, "budget={'epochs': 3}"),
    ({"seeds": [0, 0]}, "distinct integers"),
    ({"arms": {"only": {}}}, "at least two arms"),
    ({"baseline": "nope"}, "baseline='nope' is not an arm"),
    ({"evaluate": {"num_samples": 0}}, "evaluate.num_samples=0; need a positive integer"),
    ({"evaluate": {"num_sample": 4}}, "num_sample are not qgfd-eval images options"),
    ({"evaluate": {"feature_extractor": "missing.pt"}}, "evaluate.feature_extractor='missing.pt' does not exist"),
    ({"seedz": [1]}, "unknown key(s) ['seedz']"),
    ({"arms": {"a": {}, "b": {"model.init_args.qgfd.alpha": 1.5}}}, "arm 'b': alpha=1.5 is outside [0, 1)"),
    ({"evaluate": {"num_samples": 4, "steps": [5000], "metrics": ["nll"]}}, "steps=5000; need an integer from 1 to"),
])
def test_bad_study_files_are_refused_before_training(tmp_path, monkeypatch, capsys, change, message):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-c", str(write_study(tmp_path, **change)), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_a_grid_makes_one_arm_per_value_and_another_study_in_the_folder_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_study(tmp_path, arms={"vanilla": {"model.init_args.qgfd.alpha": 0.0}},
                       grid={"model.init_args.qgfd.alpha": [0.3, 0.6]})
    plan = read_study(path)
    assert list(plan.arms) == ["vanilla", "alpha=0.3", "alpha=0.6"] and plan.baseline == "vanilla"
    config = plan.runs(tmp_path / "out")[1].config
    assert config["model"]["init_args"]["qgfd"]["alpha"] == 0.3 and config["trainer"]["max_steps"] == 3
    out = tmp_path / "out"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"meta": {"identity": {"seeds": [7]}}, "rows": []}))
    assert main(["run", "-c", str(path), "--out", str(out)]) == 2
    assert "holds another study" in capsys.readouterr().err


def test_runs_trained_two_at_a_time_give_the_rows_of_runs_trained_one_at_a_time(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_study(tmp_path)
    assert main(["run", "-c", str(path), "--out", "one", "--threads", "1"]) == 0
    assert main(["run", "-c", str(path), "--out", "two", "--jobs", "2", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "2 running)" in err and "own log: two/runs/<arm>/seed<k>/study.log" in err and "finished qgfd, seed 1 (" in err
    key = lambda row: (row["arm"], row["seed"])  # noqa: E731
    alone, together = (sorted(json.loads((tmp_path / f / "study.json").read_text())["rows"], key=key)
                       for f in ("one", "two"))
    assert [key(r) for r in together] == [("qgfd", 0), ("qgfd", 1), ("vanilla", 0), ("vanilla", 1)]
    for a, b in zip(alone, together):  # each run's seed fixes its batches and noise, wherever it trains
        assert (a["train_loss"], a["val_loss"], a["nll_bpd"], a["torch_threads"]) == \
            (b["train_loss"], b["val_loss"], b["nll_bpd"], b["torch_threads"])
    log = (tmp_path / "two" / "runs" / "qgfd" / "seed0" / "study.log").read_text()
    assert "`max_steps=3` reached" in log and "wrote two/runs/qgfd/seed0/eval/results.json" in log  # its own output
    assert not list((tmp_path / "two").glob("runs/*/seed*/row.json"))  # handed over, then removed
    assert "| qgfd | 2 |" in (tmp_path / "two" / "report.md").read_text()
    assert main(["run", "-c", str(path), "--out", "two", "--jobs", "2"]) == 0  # nothing left: trains nothing
    assert "4 already done" in capsys.readouterr().out


def test_paired_interval_is_a_t_interval_on_per_seed_differences():
    mean, lo, hi, n = paired_interval({0: 2.0, 1: 3.0, 2: 4.0}, {0: 1.0, 1: 1.0, 2: 1.0})
    assert (mean, n) == (2.0, 3)
    assert hi - mean == pytest.approx(4.302653 * 1.0 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2) * sd / sqrt(3)
    assert paired_interval({0: 1.0}, {0: 0.0}) is None


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = read_study(write_study(tmp_path, budget={"steps": 6}))
    run = plan.runs(tmp_path / "out")[0]
    run.config["trainer"]["callbacks"].append({"class_path": "conftest.StopAtStep", "init_args": {"step": 3}})
    with pytest.raises(RuntimeError, match="stopped at step 3"):
        study_runs.train(run)
    assert (run.folder / "checkpoints" / "last.ckpt").exists() and not (run.folder / "final.ckpt").exists()
    run.config["trainer"]["callbacks"].pop()
    record = study_runs.train(run)
    assert record["resumed"] is True and record["steps"] == 6
    attempts = json.loads((run.folder / "attempts.json").read_text())
    assert [a["resumed"] for a in attempts] == [False, True] and record["code"] == code_version()
    steps = [step for step, _ in loss_curve(run.folder)]
    assert steps[0] < 3 and steps[-1] == 5  # the curve spans both attempts (Lightning logs step indices from 0)
    straight = plan.runs(tmp_path / "straight")[0]
    assert study_runs.train(straight)["resumed"] is False
    resumed_weights = torch.load(run.folder / "final.ckpt", weights_only=True)["state_dict"]
    straight_weights = torch.load(straight.folder / "final.ckpt", weights_only=True)["state_dict"]
    for name, value in straight_weights.items():  # same batches, timesteps and noise as the uninterrupted run
        assert torch.equal(value, resumed_weights[name]), name


def test_the_report_names_the_image_network_and_labels_small_sample_fid():
    from sampling.studies.notes import network_note

    rows = [{"arm": a, "seed": s, "fid": 30.0 + s, "fid_network": "inception-2015-12-05-pool3-a16e4d89c0ec",
             "fid_label": "FID@1000", "reference_images": 1000} for a in ("vanilla", "qgfd") for s in (0, 1)]
    note = " ".join(network_note(rows))
    assert "`inception-2015-12-05-pool3-a16e4d89c0ec`, 1000 reference images" in note and "FID@1000" in note
    assert network_note([{"arm": "vanilla", "seed": 0, "validity": 0.9}]) == []


def test_a_graph_study_reports_vun_and_the_mmds_and_a_dropped_run_trains_again(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = yaml.safe_load((CONFIGS / "planar-cpu.yaml").read_text())
    base["model"]["init_args"].update(max_nodes=12, num_train_timesteps=20, val_sample_steps=5,
                                      network={"node_dim": 16, "edge_dim": 8, "layers": 1, "heads": 2})
    base["data"]["init_args"]["num_nodes"] = 12
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    study = {"name": "tiny-planar", "base": "base.yaml", "seeds": [0], "budget": {"steps": 2},
             "arms": {"vanilla": {"model.init_args.qgfd.alpha": 0.0},
                      "rrwp": {"model.init_args.qgfd.alpha": 0.0, "model.init_args.network.rrwp_steps": 4}},
             "trainer": {"max_time": None, "check_val_every_n_epoch": 1000, "enable_progress_bar": False},
             "evaluate": {"num_samples": 4, "steps": [5]}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    threads = torch.get_num_threads()
    assert main(["run", "-c", "study.yaml", "--out", "out", "--threads", "1"]) == 0
    assert torch.get_num_threads() == threads  # the caller's count is back
    rows = json.loads((tmp_path / "out" / "study.json").read_text())["rows"]
    assert {r["arm"] for r in rows} == {"vanilla", "rrwp"} and all(r["torch_threads"] == 1 for r in rows)
    assert all(0 <= r["vun"] <= 1 and r["degree_mmd"] >= 0 and r["spectrum_mmd"] >= 0 for r in rows)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "`qgfd-eval graphs --num-samples 4 --steps 5`" in report and "vun ↑" in report and "degree_mmd ↓" in report
    assert "Runs trained with 1 torch thread: 2 of 2." in report

    rrwp = tmp_path / "out" / "runs" / "rrwp" / "seed0"
    assert main(["drop", "-c", "study.yaml", "--out", "out", "rrwp:0"]) == 0  # forgotten: trained again below
    rows = json.loads((tmp_path / "out" / "study.json").read_text())["rows"]
    assert [r["arm"] for r in rows] == ["vanilla"] and not rrwp.exists()
    assert "| rrwp | 0 |" in (tmp_path / "out" / "report.md").read_text()  # no run of it now
    for bad, message in ((["drop", "rrwp:0"], "no such finished run in 'out' (finished: vanilla:0)"),
                         (["drop", "plain:0"], "the study's arms are vanilla, rrwp and its seeds 0"),
                         (["--drop", "vanilla:0", "--dry-run"], "do not go together")):
        capsys.readouterr()
        assert main([bad[0], "-c", "study.yaml", "--out", "out", *bad[1:]]) == 2, bad
        assert message in capsys.readouterr().err, bad
    with pytest.raises(SystemExit):
        main(["drop", "-c", "study.yaml", "--out", "out", "vanilla"])
    assert "'vanilla': give ARM:SEED" in capsys.readouterr().err
    assert len(json.loads((tmp_path / "out" / "study.json").read_text())["rows"]) == 1  # refusals removed nothing
    assert main(["run", "-c", "study.yaml", "--out", "out"]) == 0
    rows = json.loads((tmp_path / "out" / "study.json").read_text())["rows"]
    assert [r["arm"] for r in rows] == ["vanilla", "rrwp"] and (rrwp / "final.ckpt").exists()


def test_the_goal_section_gives_a_plain_verdict_from_the_intervals_and_the_step_time(tmp_path):
    from sampling.studies.plan import StudyGoal, StudyPlan
    from sampling.studies.report import goal_section

    arms = {"vanilla": {}, "rrwp": {}, "qgfd": {}, "qgfd-slow": {}}
    plan = StudyPlan(name="g", base=tmp_path, seeds=[0, 1, 2], budget={"steps": 1}, arms=arms, baseline="vanilla",
                     goal=StudyGoal(metrics=["validity", "fcd"], against=["vanilla", "rrwp"], max_step_ratio=1.1))
    validity = {"vanilla": 0.60, "rrwp": 0.65, "qgfd": 0.70, "qgfd-slow": 0.70}
    speed = {"vanilla": 1.0, "rrwp": 1.0, "qgfd": 1.05, "qgfd-slow": 1.3}
    rows = [{"arm": a, "seed": s, "validity": validity[a] + 0.01 * s + (0.002 * s * s if a == "rrwp" else 0),
             "fcd": 20.0 + s, "seconds_per_step": speed[a]} for a in arms for s in (0, 1, 2)]
    text = "\n".join(goal_section(plan, rows))
    assert "- **qgfd** meets the goal (better on validity; step time 1.05x vanilla)" in text
    assert "- **qgfd-slow** does not meet the goal (better on validity; step time 1.30x vanilla)" in text
    assert "Arms meeting the goal: qgfd." in text
    text = "\n".join(goal_section(plan, rows[:-1]))  # qgfd-slow's last seed still to run
    assert "- **qgfd** meets the goal so far" in text and "(meeting it so far: qgfd)" in text
    for row in rows:  # QGFD now only ties RRWP: better than vanilla is not enough
        if row["arm"] == "qgfd":
            row["validity"] = validity["rrwp"] + 0.01 * row["seed"] + 0.002 * row["seed"] ** 2
    text = "\n".join(goal_section(plan, rows))
    assert "**No arm meets the goal**" in text and "- **qgfd** does not meet the goal" in text
    assert goal_section(StudyPlan(name="g", base=tmp_path, seeds=[0], budget={}, arms=arms, baseline="vanilla"), rows) == []
    unfinished = [r for r in rows if not (r["arm"] == "qgfd-slow" and r["seed"] == 2)]  # a study still running
    text = "\n".join(goal_section(plan, unfinished))
    assert "**No verdict yet**: 11 of 12 runs are done" in text and "No arm meets the goal" not in text
    assert "- **qgfd** does not meet the goal so far" in text


def test_the_goal_judges_the_step_time_on_the_cost_timed_apart_when_the_study_has_one(tmp_path):
    from sampling.studies.plan import StudyGoal, StudyPlan
    from sampling.studies.report import write_report

    arms = {"vanilla": {}, "rrwp": {}, "qgfd": {}}
    plan = StudyPlan(name="g", base=tmp_path, seeds=[0, 1, 2], budget={"steps": 1}, arms=arms, baseline="vanilla",
                     goal=StudyGoal(metrics=["validity"], against=["vanilla", "rrwp"], max_step_ratio=1.1),
                     base_config={"model": {"class_path": "models.MoleculeDiffusion"}})
    validity = {"vanilla": 0.60, "rrwp": 0.62, "qgfd": 0.70}
    speed = {"vanilla": 1.0, "rrwp": 1.0, "qgfd": 1.4}  # the runs shared the machine: qgfd's steps look slow
    rows = [{"arm": a, "seed": s, "validity": validity[a] + 0.01 * s + (0.002 * s * s if a == "rrwp" else 0),
             "seconds_per_step": speed[a]} for a in arms for s in (0, 1, 2)]
    report = write_report(tmp_path, plan, rows).read_text()
    assert "- **qgfd** does not meet the goal (better on validity; step time 1.40x vanilla)" in report
    assert "timed in the study's own runs" in report and "Cost timed apart" not in report
    bench = {"meta": {"suite": "structure", "threads": 2, "time": "2026-12-02T15:30:00"},
             "rows": [{"suite": "structure", "study": "g", "arm": a, "batch": 8, "train_step_ms": ms}
                      for a, ms in (("vanilla", 200.0), ("rrwp", 196.0), ("qgfd", 208.0))]}
    (tmp_path / "cost.json").write_text(json.dumps(bench))
    report = write_report(tmp_path, plan, rows).read_text()
    assert "- **qgfd** meets the goal (better on validity; step time 1.04x vanilla)" in report
    assert "(timed apart from the runs, cost.json)" in report and "| qgfd | 208.0 | 1.040 |" in report
    assert "2 torch threads, 2026-12-02T15:30:00" in report


@pytest.mark.parametrize("change, message", [
    (lambda b: b.update(rows=[dict(r, study="other") for r in b["rows"]]), "it times study other, not 'g'"),
    (lambda b: b["rows"].pop(), "no step time for arm(s) qgfd of g (it has vanilla, rrwp)"),
    (lambda b: b["meta"].update(suite="operator"), "not the output of qgfd-bench's structure suite"),
    (lambda b: b["rows"][0].update(train_step_ms=-1.0), "step times must be positive milliseconds"),
    (lambda b: b["rows"][0].pop("train_step_ms"), "a row lacks its arm, train_step_ms or batch"),
    (None, "not readable as JSON"),
])
def test_a_cost_file_for_another_study_or_missing_an_arm_is_refused_plainly(tmp_path, change, message):
    from qgfd_gen.errors import UsageError
    from sampling.studies.plan import StudyPlan
    from sampling.studies.report import write_report

    plan = StudyPlan(name="g", base=tmp_path, seeds=[0], budget={"steps": 1},
                     arms={"vanilla": {}, "rrwp": {}, "qgfd": {}}, baseline="vanilla")
    bench = {"meta": {"suite": "structure", "threads": 1},
             "rows": [{"study": "g", "arm": a, "batch": 8, "train_step_ms": 100.0} for a in plan.arms]}
    if change is None:
        (tmp_path / "cost.json").write_text("{not json")
    else:
        change(bench)
        (tmp_path / "cost.json").write_text(json.dumps(bench))
    with pytest.raises(UsageError, match=re.escape(message)) as refused:
        write_report(tmp_path, plan, [{"arm": "vanilla", "seed": 0, "validity": 0.5}])
    assert "qgfd-bench structure --study" in str(refused.value)
    assert not (tmp_path / "report.md").exists()


def test_qgfd_study_refuses_a_cost_file_of_another_study_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cost.json").write_text(json.dumps(
        {"meta": {"suite": "structure"}, "rows": [{"study": "other", "arm": "vanilla", "batch": 4, "train_step_ms": 9.0}]}))
    assert main(["run", "-c", str(write_study(tmp_path)), "--out", "out"]) == 2
    assert "it times study other, not 'tiny'" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cost.json"]  # nothing trained, nothing written


@pytest.mark.parametrize("goal, message", [
    ({"metrics": ["validity"]}, "give a mapping with metrics"),
    ({"metrics": ["validity"], "against": ["nobody"]}, "goal.against=['nobody']; give a list of arms"),
    ({"metrics": [], "against": ["vanilla"]}, "goal.metrics=[]"),
    ({"metrics": ["validity"], "against": ["vanilla"], "max_step_ratio": -1}, "goal.max_step_ratio=-1"),
])
def test_a_bad_goal_is_refused_naming_it(tmp_path, goal, message):
    from qgfd_gen.errors import UsageError

    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_study(write_study(tmp_path, goal=goal))


def test_a_one_seed_pilot_shows_single_differences_and_ranks_the_arms_without_claiming_an_interval(tmp_path):
    from sampling.studies.plan import StudyPlan
    from sampling.studies.report import write_report

    arms = {"vanilla": {}, "rrwp": {}, "qgfd": {}}
    plan = StudyPlan(name="p", base=tmp_path, seeds=[0], budget={"steps": 1}, arms=arms, baseline="vanilla",
                     base_config={"model": {"class_path": "models.MoleculeDiffusion"}})
    rows = [{"arm": a, "seed": 0, "validity": v, "fcd": f} for a, v, f in
            (("vanilla", 0.30, 38.0), ("rrwp", 0.45, 30.0), ("qgfd", 0.25, 41.0))]
    report = write_report(tmp_path, plan, rows).read_text()
    assert "| rrwp | +0.15 (1 seed) | -8 (1 seed) |" in report and "every 95% interval contains 0" not in report
    assert "One seed per arm" in report and "(3 runs)" in report
    assert "By validity (higher is better): rrwp 0.45, vanilla 0.3, qgfd 0.25" in report
    assert "By fcd (lower is better): rrwp 30, vanilla 38, qgfd 41" in report
    three_seeds = StudyPlan(name="p", base=tmp_path, seeds=[0, 1, 2], budget={"steps": 1}, arms=arms,
                            baseline="vanilla", base_config=plan.base_config)
    report = write_report(tmp_path, three_seeds, rows).read_text()  # a three-seed study at its first seed
    assert "No arm has two seeds paired with vanilla yet (3 of 9 runs done): no interval so far." in report
    assert "every 95% interval contains 0" not in report
    rows += [{"arm": "vanilla", "seed": 1, "validity": 0.31, "fcd": 37.0},
             {"arm": "qgfd", "seed": 1, "validity": 0.33, "fcd": 36.0}]
    report = write_report(tmp_path, three_seeds, rows).read_text()
    assert "every 95% interval contains 0" in report and "So far at most 2 seeds are paired, where t = 12.71." in report


def test_the_report_says_which_code_trained_which_runs():
    from sampling.studies.notes import code_note

    rows = [{"arm": "vanilla", "seed": 0, "code": "aaa"}, {"arm": "rrwp", "seed": 0, "code": "aaa + bbb"},
            {"arm": "vanilla", "seed": 1}]
    note = code_note(rows)[0]
    assert "`aaa`: vanilla seed 0; `aaa + bbb`: rrwp seed 0; `not recorded`: vanilla seed 1" in note
    assert "shares its seed number, not its batches or training noise" in note
    assert code_note(rows[:1]) == ["Trained by code `aaa`.", ""]


def test_the_report_says_how_many_torch_threads_trained_the_runs():
    from sampling.studies.notes import threads_note

    rows = [{"arm": "vanilla", "seed": 0, "torch_threads": 2}, {"arm": "rrwp", "seed": 0, "torch_threads": 2}]
    assert threads_note(rows) == " Runs trained with 2 torch threads: 2 of 2."
    mixed = rows + [{"arm": "vanilla", "seed": 1, "torch_threads": 1}, {"arm": "rrwp", "seed": 1}]
    assert threads_note(mixed) == (" Runs trained at different torch thread counts, so their step times compare only "
                                   "within a count: 1: vanilla seed 1; 2: vanilla seed 0, rrwp seed 0 (the rest "
                                   "predate the record).")
    assert threads_note([{"arm": "vanilla", "seed": 0}]) == ""


def test_a_bad_thread_count_is_refused_naming_it(capsys):
    with pytest.raises(SystemExit):
        main(["run", "-c", "study.yaml", "--threads", "0"])
    assert "--threads" in capsys.readouterr().err


def test_the_pace_counts_a_resumed_run_by_its_steps(tmp_path):
    fresh = {"arm": "a", "seed": 0, "train_seconds": 600.0, "seconds_per_step": 0.1, "steps": 5000}
    resumed = {"arm": "a", "seed": 1, "train_seconds": 60.0, "seconds_per_step": 0.1, "steps": 5000}  # last attempt
    from sampling.studies.status import run_minutes

    assert run_minutes(tmp_path, [fresh, resumed]) == pytest.approx((600 + 500) / 2 / 60)


def test_a_scorecard_study_reports_one_table_per_group_and_wraps_its_quality_plot(tmp_path):
    from PIL import Image

    from sampling.studies.plan import StudyPlan
    from sampling.studies.report import QUALITY_GROUPS, write_report

    arms = {"vanilla": {}, "qgfd": {}}
    plan = StudyPlan(name="m", base=tmp_path, seeds=[0, 1], budget={"steps": 1}, arms=arms, baseline="vanilla",
                     base_config={"model": {"class_path": "models.MoleculeDiffusion"}})
    moses = [m for group in list(QUALITY_GROUPS.values())[2:] for m in group]
    rows = [{"arm": arm, "seed": seed, "validity": 0.5 + 0.1 * seed, "intdiv1": 0.85 + 0.01 * seed + shift,
             **{m: 0.5 + 0.01 * seed for m in moses}, "seconds_per_step": 0.2}
            for arm, shift in (("vanilla", 0.0), ("qgfd", -0.05)) for seed in (0, 1)]
    report = write_report(tmp_path, plan, rows).read_text()
    means, differences = report.split("## Difference from vanilla")
    for heading in ("### Quality", "### Precision and diversity", "### MOSES's scorecard (against Test and TestSF)",
                    "### Property distances (Wasserstein-1, against Test and TestSF)", "### Cost and stability"):
        assert heading in means and heading in differences
    diversity = differences.split("### Precision and diversity")[1].split("###")[0]
    assert "| arm − vanilla | intdiv1 |" in diversity and "| qgfd | -0.05 [-0.05, -0.05] |" in diversity
    assert "qgfd: intdiv1 worse than vanilla by 0.05" in report
    assert "snn_testsf" not in report.split("### MOSES")[0]  # each column in its own group's table only
    width, height = Image.open(tmp_path / "quality.png").size
    assert height > width / 3  # 22 panels wrapped onto four rows of six, not one strip 80 inches wide
