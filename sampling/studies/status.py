"""What a study's folder holds and what is left of it: the runs done, resumable or still to train, and the
time the rest will take at the finished runs' pace (`qgfd-study check`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from qgfd_gen.errors import UsageError
from qgfd_gen.locks import folder_lock

from .plan import StudyPlan
from .table import STUDY_FILE, StudyTable


def _duration(minutes: float) -> str:
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def run_minutes(out: Path, rows: list[dict[str, Any]]) -> Optional[float]:
    """Mean wall minutes of a finished run: its training and its evaluation's rows (None before any run). A
    resumed run's train_seconds counts its last attempt only, so its training is at least its steps at its
    median step time."""
    costs = []
    for row in rows:
        results = out / "runs" / row["arm"] / f"seed{row['seed']}" / "eval" / "results.json"
        evaluation = sum(r.get("seconds") or 0 for r in json.loads(results.read_text())["rows"]) if results.exists() else 0
        if row.get("train_seconds") is not None:
            steady = (row.get("seconds_per_step") or 0) * (row.get("steps") or 0)
            costs.append(max(row["train_seconds"], steady) + evaluation)
    return sum(costs) / len(costs) / 60 if costs else None


def describe(plan: StudyPlan, out: Path, jobs: int = 1) -> list[str]:
    """The study's runs and what each still needs, from what its folder holds (nothing is written). With `jobs`
    runs at a time the rest takes ceil(todo / jobs) runs' time, if the machine has a core for each of them."""
    rows = StudyTable(out, plan).rows if (out / STUDY_FILE).exists() else []  # refuses another study's folder
    done = {(r["arm"], r["seed"]) for r in rows}
    runs = plan.runs(out)
    lines = [f"study {plan.name}: {len(plan.arms)} arms x {len(plan.seeds)} seeds = {len(runs)} runs, budget "
             f"{plan.budget} each, " + (f"evaluated by `qgfd-eval {plan.kind} {' '.join(plan.eval_options())}`"
                                       if plan.evaluates else "training only") + f"; folder {out}"]
    for run in runs:
        if (run.arm, run.seed) in done:
            status = "done"
        elif (run.folder / "checkpoints" / "last.ckpt").exists():
            status = "resumes from its last checkpoint"
        else:
            status = "to train"
        overrides = ", ".join(f"{k}={v}" for k, v in plan.arms[run.arm].items()) or "the base config"
        lines.append(f"  {run.arm:<20} seed {run.seed}: {status:<33} ({overrides})")
    todo = sum(1 for run in runs if (run.arm, run.seed) not in done)
    pace = run_minutes(out, rows)
    rounds = -(-todo // jobs)
    lines.append(f"{todo} of {len(runs)} runs still to do"
                 + (f"; at the finished runs' pace ({pace:.1f} min a run) about {_duration(rounds * pace)}"
                    + (f" with --jobs {jobs} (if each run gets its share of cores, as the finished runs had)"
                       if jobs > 1 else "") if pace and todo else ""))
    if out.is_dir():
        try:
            with folder_lock(out):
                pass
        except UsageError as busy:
            lines.append(f"now: {busy}")
    return lines
