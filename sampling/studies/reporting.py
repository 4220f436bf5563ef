"""Which report a study gets: the arms-against-baseline report (`report.write_report`), or for a study with a
`sweep:` the loss-against-sweep report (`sweep_report.write_sweep_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .plan import StudyPlan
from .report import write_report
from .sweep_report import write_sweep_report


def write_study_report(out: Path, plan: StudyPlan, rows: list[dict[str, Any]]) -> Path:
    """report.md (and its plots) for the rows so far; returns its path."""
    return (write_sweep_report if plan.sweep else write_report)(out, plan, rows)
