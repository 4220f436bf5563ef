"""A study's cost timed apart from its runs: OUT/cost.json, as `qgfd-bench structure --study CONFIG --out
OUT/cost.json` writes it with nothing else running. Runs that share the machine (two studies at one thread each)
time the other study's load as much as their own, so when this file is there the report judges the goal's
step-time limit on it and says so; without it, on the runs' own step times."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from qgfd_gen.errors import UsageError

from .plan import StudyPlan

COST_FILE = "cost.json"


@dataclass(frozen=True)
class CleanCost:
    """Median training-step time of every arm, timed in turn on one batch of the study's data."""

    path: Path
    step_ms: dict[str, float]
    batch: int
    threads: Optional[int]
    time: Optional[str]

    def ratio(self, arm: str, reference: str) -> Optional[float]:
        if arm not in self.step_ms or reference not in self.step_ms:
            return None
        return self.step_ms[arm] / self.step_ms[reference]

    def source(self) -> str:
        """Where the figures come from, in the words of the report."""
        threads = f"{self.threads} torch thread{'s' if self.threads != 1 else ''}" if self.threads else "torch threads not recorded"
        return (f"`{self.path.name}`: `qgfd-bench structure --study`, every arm in turn on one batch of "
                f"{self.batch} of the base config's data, {threads}, {self.time or 'time not recorded'}")


def _refuse(path: Path, problem: str) -> UsageError:
    return UsageError(f"{path}: {problem}; write it with nothing else running: qgfd-bench structure "
                      f"--study <this study's config> --out {path} (or remove it to judge the cost on the runs' "
                      f"own step times)")


def read_clean_cost(out: Path, plan: StudyPlan) -> Optional[CleanCost]:
    """OUT/cost.json when there is one, checked to time this study and every one of its arms."""
    path = Path(out) / COST_FILE
    if not path.exists():
        return None
    try:
        data: Any = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _refuse(path, f"not readable as JSON ({error})") from None
    meta = data.get("meta") if isinstance(data, dict) else None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(meta, dict) or meta.get("suite") != "structure" or not isinstance(rows, list) or not rows:
        raise _refuse(path, "not the output of qgfd-bench's structure suite (a 'meta' with suite 'structure' and "
                            "a list of 'rows')")
    studies = sorted({str(r.get("study")) for r in rows if isinstance(r, dict)})
    if studies != [plan.name]:
        raise _refuse(path, f"it times study {', '.join(studies)}, not {plan.name!r}")
    try:
        step_ms = {str(r["arm"]): float(r["train_step_ms"]) for r in rows}
        batch = int(rows[0]["batch"])
    except (KeyError, TypeError, ValueError) as error:
        raise _refuse(path, f"a row lacks its arm, train_step_ms or batch ({error!r})") from None
    if any(not ms > 0 for ms in step_ms.values()):
        raise _refuse(path, f"step times must be positive milliseconds, got {step_ms}")
    arms = timed_arms(plan)
    missing = [arm for arm in arms if arm not in step_ms]
    if missing:
        raise _refuse(path, f"no step time for arm(s) {', '.join(missing)} of {plan.name} (it has "
                            f"{', '.join(step_ms)})")
    threads = meta.get("threads")
    return CleanCost(path=path, step_ms={arm: step_ms[arm] for arm in arms}, batch=batch,
                     threads=int(threads) if isinstance(threads, int) else None, time=meta.get("time"))


def timed_arms(plan: StudyPlan) -> list[str]:
    """The arms a cost.json times: every arm, or a sweep study's named arms (the swept value costs nothing)."""
    return list(dict.fromkeys(base for base, _ in plan.sweep_of.values())) if plan.sweep else list(plan.arms)


def cost_section(plan: StudyPlan, cost: Optional[CleanCost]) -> list[str]:
    """The table of the cost timed apart, arm by arm against the baseline."""
    if cost is None:
        return []
    baseline = plan.sweep_of[plan.baseline][0] if plan.sweep else plan.baseline
    lines = ["## Cost timed apart from the runs", "",
             f"From {cost.source()}. Step time of forward, backward and optimiser step; the ratio is the arm's "
             f"against {baseline}'s.", "",
             f"| arm | step ms | x {baseline} |", "|---|---|---|"]
    for arm, ms in cost.step_ms.items():
        lines.append(f"| {arm} | {ms:.1f} | {cost.ratio(arm, baseline):.3f} |")
    return lines + [""]
