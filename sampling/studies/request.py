"""What `qgfd-study` was asked, as a typed request, and the one function that carries it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from qgfd_gen.errors import UsageError
from qgfd_gen.io import check_outputs
from qgfd_gen.locks import folder_lock

from .cost import read_clean_cost
from .plan import read_study
from .table import STUDY_FILE, StudyTable


@dataclass
class StudyRequest:
    """One `qgfd-study` call.

    Attributes:
        mode: ``run``, ``check``, ``status``, ``report`` or ``drop``.
        config: the study file.
        out: the study folder; None: ``studies/<study name>``.
        jobs: runs trained at once (run), or counted as running at once for the time left (check, status).
        threads: torch threads per run (run).
        drop: (arm, seed) of the runs to forget (drop).
    """

    mode: str
    config: str
    out: Optional[str] = None
    jobs: int = 1
    threads: Optional[int] = None
    drop: list[tuple[str, int]] = field(default_factory=list)


def check_goal_metrics(plan) -> None:
    """A goal names metrics the report knows: a misspelt one would give a verdict on nothing."""
    from .report import COLLAPSE, COST, QUALITY, STABILITY
    from .sweep_report import GOAL_METRICS as SWEEP_GOAL_METRICS

    if plan.goal is None:
        return
    if plan.sweeps_learning_rate:
        known = SWEEP_GOAL_METRICS
    elif plan.sweep:
        known = (*QUALITY, *COST, *STABILITY, *COLLAPSE)
    else:
        known = tuple(QUALITY)
    for field_name in ("metrics", "also_above"):
        unknown = [m for m in getattr(plan.goal, field_name) if m.split("@")[0] not in known]
        if unknown:
            raise UsageError(f"goal.{field_name} {unknown} are not metrics the report knows; choose from {', '.join(known)}")
    swept = {float(v) for values in plan.sweep.values() for v in values}
    if plan.goal.at and not set(plan.goal.at) <= swept:
        raise UsageError(f"goal.at={plan.goal.at!r} names values the sweep does not run; it runs {sorted(swept)}")


def run_request(request: StudyRequest) -> int:
    """Carries out one request: everything a file names is checked before anything trains or is written.

    Returns:
        The exit status (0).

    Raises:
        UsageError: a bad study file, arm, evaluation option or folder, named in one line.
    """
    import torch

    from .engine import drop_runs, run_study
    from .reporting import write_study_report as write_report
    from .runs import check_arms, check_evaluation
    from .status import describe

    plan = read_study(request.config)
    check_goal_metrics(plan)
    out = Path(request.out or Path("studies") / plan.name)
    check_outputs({"--out": out}, {"-c": request.config}, folders=("--out",))
    if request.mode in ("report", "drop") and not (out / STUDY_FILE).exists():
        raise UsageError(f"{request.mode}: {str(out / STUDY_FILE)!r} does not exist; give the --out of a study that "
                         f"has finished runs")
    if request.mode != "status":
        check_arms(plan, check_evaluation(plan, out))
        read_clean_cost(out, plan)  # a cost.json for another study or arms is refused before any training
    if request.mode in ("check", "status"):
        print("\n".join(describe(plan, out, request.jobs)))
        return 0
    threads = torch.get_num_threads()
    try:
        if request.threads:
            torch.set_num_threads(request.threads)
        with folder_lock(out):  # one study per folder
            if request.mode == "drop":
                print("\n".join(drop_runs(plan, out, request.drop)))
            elif request.mode == "report":
                print(f"wrote {write_report(out, plan, StudyTable(out, plan).rows)}")
            else:
                run_study(plan, out, request.jobs, request.config, request.threads)
    finally:  # a caller in the same process keeps its own thread count
        torch.set_num_threads(threads)
    return 0
