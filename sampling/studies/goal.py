"""A study's goal: what would count as QGFD helping, stated in the study file before the study runs, and checked
here as it is read (metrics, arms, values). Reporting only: it is not part of the study's identity."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from qgfd_gen.errors import UsageError


@dataclass
class StudyGoal:
    """What would count as QGFD helping, stated before the study runs: a candidate arm meets it when, for one of
    `metrics`, its paired 95% interval excludes 0 in its favour against every arm of `against`, at no more than
    `max_step_ratio` times the first of them's seconds per step. Reporting only: not part of the study's identity."""

    metrics: list[str]
    against: list[str]
    max_step_ratio: float = 1.1
    pairs: list[list[str]] = field(default_factory=list)  # sweep studies: [with, without] arms compared head to head
    margin: float = 0.0  # sweep studies: a lower sensitivity counts when lower by this share of the other's
    at: list[float] = field(default_factory=list)  # studies sweeping another key: the values judged (all if empty)
    also_above: list[str] = field(default_factory=list)  # ... and one of these must stay above the against arm's
    candidates: list[str] = field(default_factory=list)  # the arms the goal is about (default: all but `against`)



def read_goal(value: Any, arms: dict[str, Any], path: Path) -> Optional[StudyGoal]:
    if value is None:
        return None
    keys = {f.name for f in dataclasses.fields(StudyGoal)}
    if not isinstance(value, dict) or set(value) - keys or not {"metrics", "against"} <= set(value):
        raise UsageError(f"{str(path)!r}: goal={value!r}; give a mapping with metrics: [...], against: [arms] "
                         f"(and optionally max_step_ratio)")
    metrics, against = value["metrics"], value["against"]
    if not (isinstance(metrics, list) and metrics and all(isinstance(m, str) for m in metrics)):
        raise UsageError(f"{str(path)!r}: goal.metrics={metrics!r}; give a list of metric names, e.g. [validity, fcd]")
    if not (isinstance(against, list) and against and all(a in arms for a in against)):
        raise UsageError(f"{str(path)!r}: goal.against={against!r}; give a list of arms ({', '.join(arms)})")
    pairs = value.get("pairs", [])
    if not (isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 and all(a in arms for a in p)
                                            for p in pairs)):
        raise UsageError(f"{str(path)!r}: goal.pairs={pairs!r}; give a list of [with, without] arm pairs "
                         f"({', '.join(arms)})")
    ratio = value.get("max_step_ratio", 1.1)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0:
        raise UsageError(f"{str(path)!r}: goal.max_step_ratio={ratio!r}; give a positive number such as 1.1")
    margin = value.get("margin", 0.0)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise UsageError(f"{str(path)!r}: goal.margin={margin!r}; give a share in [0, 1), such as 0.1")
    at, also_above, candidates = value.get("at", []), value.get("also_above", []), value.get("candidates", [])
    if not (isinstance(candidates, list) and all(c in arms for c in candidates)):
        raise UsageError(f"{str(path)!r}: goal.candidates={candidates!r}; give a list of arms ({', '.join(arms)})")
    if not (isinstance(at, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in at)):
        raise UsageError(f"{str(path)!r}: goal.at={at!r}; give a list of swept values, e.g. [16, 32]")
    if not (isinstance(also_above, list) and all(isinstance(m, str) for m in also_above)):
        raise UsageError(f"{str(path)!r}: goal.also_above={also_above!r}; give a list of measure names")
    return StudyGoal(list(metrics), list(against), float(ratio), [list(p) for p in pairs], float(margin),
                     [float(v) for v in at], list(also_above), list(candidates))
