"""A study run end to end: every run not yet in the table trained and evaluated (one at a time, or several at
once in their own processes), the rows and report written after each; and runs forgotten on request."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

from qgfd_gen.errors import UsageError

from .jobs import default_threads, run_parallel
from .plan import StudyPlan
from .reporting import write_study_report as write_report
from .runs import train_and_evaluate
from .table import STUDY_FILE, StudyTable


def run_study(plan: StudyPlan, out: Path, jobs: int = 1, config: Optional[str] = None,
              threads: Optional[int] = None) -> StudyTable:
    """Every run not yet in the table, one at a time in this process or `jobs` at a time (then `config` is the
    study file the run processes read); the rows and report are written after every run.

    Args:
        plan: the study, as `read_study` checked it.
        out: the study folder (rows, report, runs).
        jobs: runs trained at once, one process each.
        config: the study file (needed when jobs > 1).
        threads: torch threads per run process (default: the cores shared out among the jobs).

    Returns:
        The study's table, every finished row in it.
    """
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

        run_parallel(plan, str(config), out, todo, jobs, default_threads(jobs, threads), finished_row, announce,
                     len(runs) - len(todo) + 1, len(runs))
        todo = []
    started, finished = time.perf_counter(), 0
    for index, run in enumerate(todo, start=len(runs) - len(todo) + 1):
        elapsed = time.perf_counter() - started
        left = f", about {elapsed / finished * (len(todo) - finished) / 60:.0f} min left" if finished else ""
        announce(f"[{index}/{len(runs)}] {run.arm}, seed {run.seed} ({elapsed / 60:.1f} min elapsed{left})")
        row = train_and_evaluate(plan, run)
        table.append(row)
        report = write_report(out, plan, table.rows)  # after every run: an interrupted study has its report
        finished += 1
    if report is None:  # nothing ran: the report of the finished rows, with this version's report code
        report = write_report(out, plan, table.rows)
    print(f"wrote {out / STUDY_FILE}, {out / 'study.csv'}, {report}")
    return table


def drop_runs(plan: StudyPlan, out: Path, runs: list[tuple[str, int]]) -> list[str]:
    """Forgets each run (row and folder); every name is checked before anything is removed."""
    for arm, seed in runs:
        if arm not in plan.arms or seed not in plan.seeds:
            raise UsageError(f"drop {arm}:{seed}: the study's arms are {', '.join(plan.arms)} and its seeds "
                             f"{', '.join(map(str, plan.seeds))}")
    runs_folder = (out / "runs").resolve()
    folders = {(arm, seed): out / "runs" / arm / f"seed{seed}" for arm, seed in runs}
    for (arm, seed), folder in folders.items():
        if runs_folder not in folder.resolve().parents:  # arm names are checked; this holds whatever the file says
            raise UsageError(f"drop {arm}:{seed}: {str(folder)!r} is outside the study's runs folder; nothing removed")
    table = StudyTable(out, plan)
    table.drop(runs)  # refuses, removing nothing, when any of them has no row
    said = []
    for (arm, seed), folder in folders.items():
        shutil.rmtree(folder, ignore_errors=True)
        said.append(f"dropped {arm} seed {seed}: its row and {folder}")
    if table.rows:
        said.append(f"wrote {write_report(out, plan, table.rows)}")
    return said


def announce(text: str) -> None:
    """A rule across the terminal naming the run that starts (plain text where rich is missing)."""
    try:
        from rich.console import Console

        Console(stderr=True).rule(text)
    except ImportError:  # pragma: no cover - rich comes with the project
        print(text, file=sys.stderr)
