"""Sweep results: rows appended as they finish (CSV and JSON, each rewritten whole by rename), and a
plot of quality against network evaluations."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from qgfd_gen.errors import UsageError
from qgfd_gen.io import atomic_path, write_csv, write_json


class SweepResults:
    """results.json, results.csv and quality_vs_steps.png in `folder`. Rows already there (an interrupted
    sweep) are kept and `has(key)` lets a resumed sweep skip them, but only when they came from the same
    run: `meta["identity"]` (the checkpoint's content hash, the sampler and all its options, the metric
    settings) must match, or the folder is refused rather than mixed."""

    def __init__(self, folder: str | Path, meta: dict[str, Any], metrics: list[str]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.meta, self.metrics = meta, metrics
        self.rows: list[dict[str, Any]] = self._existing_rows(self.folder / "results.json")

    def _existing_rows(self, path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        try:
            data = json.loads(path.read_text())
            rows, identity = data["rows"], data["meta"]["identity"]
            assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise UsageError(f"{str(path)!r} is not a results file of this workbench (truncated, or another "
                             f"format); move it away or give another --out") from None
        if identity != self.meta["identity"]:
            changed = sorted(k for k in set(identity) | set(self.meta["identity"])
                             if identity.get(k) != self.meta["identity"].get(k))
            detail = ", ".join(f"{k}: {identity.get(k)!r} there, {self.meta['identity'].get(k)!r} now" for k in changed)
            raise UsageError(f"{str(self.folder)!r} holds results of another run ({detail}); results are never "
                             f"mixed: give a new --out")
        return rows

    def has(self, setting: dict[str, Any]) -> bool:
        return any(all(row.get(k) == v for k, v in setting.items()) for row in self.rows)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        write_json(self.folder / "results.json", {"meta": self.meta, "rows": self.rows})
        write_csv(self.folder / "results.csv", self.rows)

    def plot(self, title: str) -> Optional[Path]:
        """quality_vs_steps.png: one panel per metric, x = mean network evaluations per sample; fixed-step
        settings as lines (one per sampler and setting kind), adaptive tolerances as labelled stars, so a
        reader sees whether the adaptive sampler sits on the fixed samplers' frontier."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        metrics = [m for m in self.metrics if any(_finite(r.get(m)) for r in self.rows)]
        if not metrics:
            return None
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 4.0), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            _plot_metric(ax, [r for r in self.rows if _finite(r.get(metric))], metric)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        path = self.folder / "quality_vs_steps.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        return path


LABEL_OFFSETS = (((5, 4), "left"), ((-5, -10), "right"), ((5, -10), "left"), ((-5, 4), "right"))


def _plot_metric(ax, rows: list[dict[str, Any]], metric: str) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.get("sampler") == "adaptive":
            continue
        label = r["setting"] if r.get("sampler") in (None, "posterior-jump") else f"{r['sampler']} {r['setting']}"
        series.setdefault(label, []).append((r["network_evaluations"], r[metric]))
    for label, points in sorted(series.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    adaptive = [r for r in rows if r.get("sampler") == "adaptive"]
    for ended, color in ((False, "black"), (True, "tab:red")):
        group = [r for r in adaptive if (r.get("end_log_snr") is not None) == ended]
        if not group:
            continue
        ax.plot([r["network_evaluations"] for r in group], [r[metric] for r in group], linestyle="none",
                marker="*", markersize=11, color=color, label="adaptive (rtol" + (", end log-SNR)" if ended else ")"))
        for i, r in enumerate(sorted(group, key=lambda r: r["network_evaluations"])):
            text = f"{r['rtol']:g}" + (f", {r['end_log_snr']:g}" if ended else "")
            (dx, dy), align = LABEL_OFFSETS[i % len(LABEL_OFFSETS)]  # neighbours' labels go to other corners
            ax.annotate(text, (r["network_evaluations"], r[metric]), textcoords="offset points", xytext=(dx, dy),
                        ha=align, fontsize=7, color=color)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor log labels collide
    ticks = sorted({r["network_evaluations"] for r in rows if r.get("setting") == "fixed"})
    if ticks:  # every swept step count labelled (a log axis alone labels only powers of ten)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    values = [r[metric] for r in rows]
    if min(values) > 0 and max(values) > 5 * min(values):  # a far-off coarse setting would flatten the frontier
        ax.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 0.6, not 6 x 10^-1
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("network evaluations per sample (mean)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

