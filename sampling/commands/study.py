"""qgfd-study: does QGFD help, and at what cost? Trains every arm of a study for every seed through the same
LightningCLI path as `lightning fit`, evaluates each run with qgfd-eval, and writes the evidence.

    qgfd-study -c configs/studies/qm9-cpu.yaml [--out studies/qm9-cpu] [--threads N] [--dry-run | --report-only]
    qgfd-study -c configs/studies/qm9-cpu.yaml --drop vanilla:2   # forget a run; the next study run trains it again
    qgfd-study -c configs/studies/tree-cpu.yaml --jobs 2 --threads 1   # two runs at a time, one process each

OUT/study.json and OUT/study.csv hold one row per arm and seed (the overrides, parameters, time per
step, memory of a training step, final training and validation loss, every metric); OUT/report.md the mean ± std per arm,
each arm's difference from the baseline arm with a 95% paired t interval over seeds, and the plots. Every run
lives in OUT/runs/<arm>/seed<k>/ (its config, checkpoints, logs, evaluation). A rerun skips finished runs and
resumes an interrupted one from its last checkpoint; a folder holding another study is refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

from qgfd_gen.errors import UsageError, command
from qgfd_gen.io import atomic_path, check_outputs, write_json, write_text
from qgfd_gen.locks import folder_lock
from qgfd_gen.provenance import code_version

from .options import positive_int
from .study_cost import read_clean_cost
from .study_jobs import default_threads, run_parallel
from .study_plan import Run, StudyPlan, read_study
from .study_status import describe
from .study_plots import loss_curve
from .study_report import QUALITY, write_report
from .study_table import STUDY_FILE, StudyTable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgfd-study", description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--config", required=True, help="a study file (configs/studies/*.yaml)")
    parser.add_argument("--out", default=None, help="study folder (default studies/<study name>)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the study (every arm builds, the evaluation options parse) and list its runs "
                             "with what each still needs; train nothing, write nothing")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite report.md and its plots from the rows already in --out (a study stopped partway, "
                             "or one reported by older code); train nothing")
    parser.add_argument("--drop", action="append", type=run_name, default=[], metavar="ARM:SEED",
                        help="forget a finished run, its row and its folder (checkpoints, logs, evaluation), so that "
                             "the next run of the study trains it again (say, it trained on another machine and its "
                             "step time pairs with nothing); repeatable; trains nothing, rewrites the report")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads for training and evaluation (default: torch's choice, one a core); each "
                             "run records the count. Small graph networks use two cores poorly: two studies at once, "
                             "1 thread each, do more runs an hour than one at 2 threads")
    parser.add_argument("--jobs", type=positive_int, default=1,
                        help="runs trained at once, one process each, each run's output in its study.log (default 1). "
                             "With --jobs N and no --threads, each run gets the cores / N threads")
    return parser


def run_name(text: str) -> tuple[str, int]:
    arm, colon, seed = text.rpartition(":")
    if not colon or not arm or not seed.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give ARM:SEED, an arm of the study and one of its seeds (vanilla:2)")
    return arm, int(seed)


def drop_runs(plan: StudyPlan, out: Path, runs: list[tuple[str, int]]) -> list[str]:
    """Forgets each run (row and folder); every name is checked before anything is removed."""
    for arm, seed in runs:
        if arm not in plan.arms or seed not in plan.seeds:
            raise UsageError(f"--drop {arm}:{seed}: the study's arms are {', '.join(plan.arms)} and its seeds "
                             f"{', '.join(map(str, plan.seeds))}")
    table = StudyTable(out, plan)
    table.drop(runs)  # refuses, removing nothing, when any of them has no row
    said = []
    for arm, seed in runs:
        folder = out / "runs" / arm / f"seed{seed}"
        shutil.rmtree(folder, ignore_errors=True)
        said.append(f"dropped {arm} seed {seed}: its row and {folder}")
    if table.rows:
        said.append(f"wrote {write_report(out, plan, table.rows)}")
    return said


def eval_arguments(plan: StudyPlan, checkpoint: Path, out: Path) -> argparse.Namespace:
    """qgfd-eval's arguments for one run, from the study's `evaluate` mapping."""
    from .evaluate import build_parser as eval_parser

    argv = [plan.kind, "--ckpt", str(checkpoint), "--out", str(out), *plan.eval_options()]
    try:
        return eval_parser().parse_args(argv)
    except SystemExit:  # argparse has printed what it refused
        raise UsageError(f"the study's evaluate options {plan.evaluate} are not qgfd-eval {plan.kind} options "
                         f"(see `qgfd-eval {plan.kind} --help`)") from None


def check_evaluation(plan: StudyPlan, out: Path) -> argparse.Namespace:
    """Before any training: the evaluation options parse and the files they name exist."""
    args = eval_arguments(plan, out / "final.ckpt", out / "eval")
    for name in ("feature_extractor", "inception_weights", "data_dir"):
        path = getattr(args, name, None)
        if path and not Path(path).exists():
            hint = " (make it: qgfd-features --out FILE)" if name == "feature_extractor" else ""
            raise UsageError(f"evaluate.{name}={path!r} does not exist{hint}")
    return args


def check_arms(plan: StudyPlan, evaluation: Optional[argparse.Namespace] = None) -> None:
    """Before any training: every arm's model builds, so a value its class refuses (say qgfd.alpha 1.5)
    stops the study at once, naming the arm, instead of after the arms before it have trained; and the
    evaluation's sampler settings suit it (say steps beyond its training timesteps)."""
    for arm in plan.arms:
        try:
            built = plan.build_model(arm)
            if evaluation is not None:
                for steps in evaluation.steps:
                    if plan.kind == "images":
                        for sampler in evaluation.sampler:
                            built.check_sampling(evaluation.num_samples, sampler, None if sampler == "adaptive" else steps)
                    else:
                        built.check_sampling(evaluation.num_samples, steps)
        except (ValueError, TypeError) as error:
            raise UsageError(f"arm {arm!r}: {error}") from None


def train(run: Run) -> dict[str, Any]:
    """Train one run (resuming from its last checkpoint), save final.ckpt, and return what it cost."""
    record_path, final = run.folder / "training.json", run.folder / "final.ckpt"
    if record_path.exists() and final.exists():
        return json.loads(record_path.read_text())
    from .lightning import run_cli

    config_path = write_text(run.folder / "config.yaml", yaml.safe_dump(run.config, sort_keys=False))
    last = run.folder / "checkpoints" / "last.ckpt"
    resumed = last.exists()
    attempts = record_attempt(run.folder / "attempts.json", resumed)
    argv = ["fit", "-c", str(config_path)] + (["--ckpt_path", str(last)] if resumed else [])
    start = time.perf_counter()
    with warnings.catch_warnings():  # LightningCLI warns when args are given while sys.argv holds the study's own
        warnings.filterwarnings("ignore", "LightningCLI's args parameter")
        cli = run_cli(argv)
    trainer, model = cli.trainer, cli.model
    if trainer.interrupted or (run.config["trainer"]["max_steps"] > 0 and trainer.global_step < run.config["trainer"]["max_steps"]):
        raise KeyboardInterrupt(f"training of {run.arm} seed {run.seed} stopped at step {trainer.global_step}")
    seconds = time.perf_counter() - start
    validation = trainer.validate(model, datamodule=cli.datamodule, verbose=False)[0]  # at the final weights
    diagnostics = next(c for c in trainer.callbacks if type(c).__name__ == "TrainingDiagnostics")
    with atomic_path(final) as tmp:
        trainer.save_checkpoint(tmp, weights_only=False)
    record = {
        "parameters": sum(p.numel() for p in model.network.parameters() if p.requires_grad),
        "steps": trainer.global_step, "train_seconds": seconds, "resumed": resumed,
        "seconds_per_step": diagnostics.seconds_per_step(), "step_memory_mb": diagnostics.step_memory_mb,
        "train_loss": final_training_loss(run.folder),
        "val_loss": _float(validation.get("val/loss")),
        "nonfinite_losses": diagnostics.nonfinite_losses, "skipped_steps": diagnostics.skipped_steps,
        "torch_threads": torch.get_num_threads(),
        "code": " + ".join(dict.fromkeys(a["code"] for a in attempts)),
    }
    write_json(record_path, record)
    return record


def record_attempt(path: Path, resumed: bool) -> list[dict[str, Any]]:
    """Appends this training attempt (the code it runs, whether it resumes) to the run's attempts file: a run
    resumed by newer code says it was trained by both."""
    attempts = json.loads(path.read_text()) if path.exists() else []
    attempts.append({"code": code_version(), "resumed": resumed, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    write_json(path, attempts)
    return attempts


def final_training_loss(folder: Path, last: int = 10) -> Optional[float]:
    """The mean of the last `last` logged training losses: one batch's loss is too noisy to compare runs."""
    curve = loss_curve(folder)[-last:]
    return sum(value for _, value in curve) / len(curve) if curve else None


def evaluate(plan: StudyPlan, run: Run) -> dict[str, Any]:
    """qgfd-eval on the run's final checkpoint; the metrics of each evaluated setting (suffixed with the
    sampler steps when the evaluation sweeps more than one)."""
    from .evaluate import run_evaluation

    run_evaluation(eval_arguments(plan, run.folder / "final.ckpt", run.folder / "eval"))
    data = json.loads((run.folder / "eval" / "results.json").read_text())
    rows = data["rows"]
    scores: dict[str, Any] = {}
    for row in rows:
        suffix = f"@{row['sampler_steps']}" if len(rows) > 1 else ""
        scores.update({f"{m}{suffix}": row[m] for m in KNOWN_METRICS if m in row})
        scores.update({k: row[k] for k in PROVENANCE if k in row})  # one network and count for every row of a run
    return scores


def train_and_evaluate(plan: StudyPlan, run: Run) -> dict[str, Any]:
    """One run's row: its arm, seed and overrides, what its training cost, and its scores."""
    return {"arm": run.arm, "seed": run.seed, **plan.arms[run.arm], **train(run), **evaluate(plan, run)}


KNOWN_METRICS = tuple(QUALITY)  # every metric the report knows the better direction of
PROVENANCE = ("fid_network", "fid_label", "reference_images")  # which network scored the images, on how many


def _float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def run_study(plan: StudyPlan, out: Path, jobs: int = 1, config: Optional[str] = None,
              threads: Optional[int] = None) -> StudyTable:
    """Every run not yet in the table, one at a time in this process or `jobs` at a time (then `config` is the
    study file the run processes read); the rows and report are written after every run."""
    table = StudyTable(out, plan)
    runs = plan.runs(out)
    todo = [run for run in runs if not table.has(run)]
    print(f"study {plan.name}: {len(plan.arms)} arms x {len(plan.seeds)} seeds = {len(runs)} runs, "
          f"{len(runs) - len(todo)} already done; budget {plan.budget} per run; results in {out}"
          + (f"; {jobs} runs at a time, {default_threads(jobs, threads)} torch thread(s) each" if jobs > 1 else ""))
    report = None
    if jobs > 1 and todo:
        def finished_row(row: dict[str, Any]) -> None:
            nonlocal report
            table.append(row)
            report = write_report(out, plan, table.rows)

        run_parallel(plan, str(config), out, todo, jobs, default_threads(jobs, threads), finished_row, _announce,
                     len(runs) - len(todo) + 1, len(runs))
        todo = []
    started, finished = time.perf_counter(), 0
    for index, run in enumerate(todo, start=len(runs) - len(todo) + 1):
        elapsed = time.perf_counter() - started
        left = f", about {elapsed / finished * (len(todo) - finished) / 60:.0f} min left" if finished else ""
        _announce(f"[{index}/{len(runs)}] {run.arm}, seed {run.seed} ({elapsed / 60:.1f} min elapsed{left})")
        row = train_and_evaluate(plan, run)
        table.append(row)
        report = write_report(out, plan, table.rows)  # after every run: an interrupted study has its report
        finished += 1
    if report is None:  # nothing ran: the report of the finished rows, with this version's report code
        report = write_report(out, plan, table.rows)
    print(f"wrote {out / STUDY_FILE}, {out / 'study.csv'}, {report}")
    return table


def _announce(text: str) -> None:
    try:
        from rich.console import Console

        Console(stderr=True).rule(text)
    except ImportError:  # pragma: no cover - rich comes with the project
        print(text, file=sys.stderr)


@command
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    plan = read_study(args.config)
    out = Path(args.out or Path("studies") / plan.name)
    check_outputs({"--out": out}, {"-c": args.config}, folders=("--out",))
    if args.drop and (args.dry_run or args.report_only):
        raise UsageError("--drop trains nothing and rewrites the report itself; give it without --dry-run and "
                         "--report-only")
    for option, asked in (("--report-only", args.report_only), ("--drop", args.drop)):
        if asked and not (out / STUDY_FILE).exists():
            raise UsageError(f"{option}: {str(out / STUDY_FILE)!r} does not exist; give the --out of a study that "
                             f"has finished runs")
    check_arms(plan, check_evaluation(plan, out))
    read_clean_cost(out, plan)  # a cost.json for another study or arms is refused before any training
    if args.dry_run:
        print("\n".join(describe(plan, out, args.jobs)))
        return 0
    threads = torch.get_num_threads()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        with folder_lock(out):  # one study per folder
            if args.drop:
                print("\n".join(drop_runs(plan, out, args.drop)))
            elif args.report_only:
                print(f"wrote {write_report(out, plan, StudyTable(out, plan).rows)}")
            else:
                run_study(plan, out, args.jobs, args.config, args.threads)
    finally:  # a caller in the same process keeps its own thread count
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
