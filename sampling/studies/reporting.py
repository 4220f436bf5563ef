"""Which report a study gets: the arms-against-baseline report (`report.write_report`); for a study sweeping the
learning rate the loss-against-sweep report (`sweep_report.write_sweep_report`); for a study sweeping another key
(the depth) each arm against the baseline at each value (`value_report.write_value_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .plan import StudyPlan
from .report import write_report
from .sweep_report import write_sweep_report
from .value_report import write_value_report


def write_study_report(out: Path, plan: StudyPlan, rows: list[dict[str, Any]]) -> Path:
    """report.md (and its plots) for the rows so far; returns its path."""
    if not plan.sweep:
        return write_report(out, plan, rows)
    return (write_sweep_report if plan.sweeps_learning_rate else write_value_report)(out, plan, rows)
