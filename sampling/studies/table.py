"""A study's rows: one per arm and seed, in OUT/study.json and OUT/study.csv, stamped with the study's identity so
that a folder is never shared by two studies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qgfd_gen.errors import UsageError
from qgfd_gen.io import write_csv, write_json

from .plan import StudyPlan

STUDY_FILE = "study.json"


class StudyTable:
    """The rows of a study, rewritten whole (by rename) after every run; a folder holding another study's
    rows is refused, not mixed."""

    def __init__(self, out: Path, plan: StudyPlan):
        self.out, self.meta = out, {"name": plan.name, "kind": plan.kind, "base": str(plan.base),
                                    "baseline": plan.baseline, "identity": plan.identity()}
        out.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        path = out / STUDY_FILE
        if path.exists():
            try:
                data = json.loads(path.read_text())
                rows, identity = data["rows"], data["meta"]["identity"]
            except (ValueError, KeyError, TypeError):
                raise UsageError(f"{str(path)!r} is not a study file of this workbench; give another --out") from None
            expected = json.loads(json.dumps(self.meta["identity"]))  # as stored: tuples become lists
            if identity != expected:
                changed = sorted(k for k in identity if identity.get(k) != expected.get(k))
                raise UsageError(f"{str(out)!r} holds another study (it differs in {', '.join(changed) or 'its keys'}); "
                                 f"studies are never mixed: give a new --out")
            bad = next((i for i, r in enumerate(rows if isinstance(rows, list) else [None])
                        if not (isinstance(r, dict) and isinstance(r.get("arm"), str) and isinstance(r.get("seed"), int))),
                       None)
            if bad is not None:
                raise UsageError(f"{str(path)!r}: row {bad} is not a mapping with an `arm` name and an integer `seed`; "
                                 f"restore the file, or drop the row by hand and let the study run it again")
            self.rows = rows

    def has(self, run) -> bool:
        return self._has(run.arm, run.seed)

    def _has(self, arm: str, seed: int) -> bool:
        return any(r["arm"] == arm and r["seed"] == seed for r in self.rows)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._write()

    def drop(self, runs: list[tuple[str, int]]) -> None:
        """Forget finished runs' rows (the study trains them again): all of them, or none when one has no row."""
        missing = [f"{arm}:{seed}" for arm, seed in runs if not self._has(arm, seed)]
        if missing:
            finished = ", ".join(f"{r['arm']}:{r['seed']}" for r in self.rows) or "none"
            raise UsageError(f"--drop {', '.join(missing)}: no such finished run in {str(self.out)!r} "
                             f"(finished: {finished})")
        dropped = set(runs)
        self.rows = [r for r in self.rows if (r["arm"], r["seed"]) not in dropped]
        self._write()

    def _write(self) -> None:
        write_json(self.out / STUDY_FILE, {"meta": self.meta, "rows": self.rows})
        write_csv(self.out / "study.csv", self.rows)
