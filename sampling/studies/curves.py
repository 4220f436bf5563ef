"""A run's logged curves, read back from its CSVLogger files (every version: a resumed run continues in a new one)."""

from __future__ import annotations

import csv
from pathlib import Path


def loss_curve(folder: Path, column: str = "train/loss") -> list[tuple[int, float]]:
    """(step, value) from every CSVLogger version of a run (a resumed run continues in a new version)."""
    points: dict[int, float] = {}
    for metrics in sorted((folder / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])):
        with open(metrics, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get(column) not in (None, "") and row.get("step") not in (None, ""):
                    points[int(row["step"])] = float(row[column])
    return sorted(points.items())
