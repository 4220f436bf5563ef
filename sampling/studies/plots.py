"""A study's plots: quality per arm with error bars, training loss curves, cost per arm, and QGFD's residual
against iteration per layer. Each returns the PNG it wrote, or None when there is nothing to draw."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Optional

from qgfd_gen.io import atomic_path

from .curves import loss_curve
from .plan import StudyPlan

QUALITY_PANELS_PER_ROW = 6  # quality.png wraps onto rows of this many panels
COST_LABELS = {"seconds_per_step": "seconds per training step", "step_memory_mb": "memory of a training step (MiB)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _pyplot().close(fig)
    return path


def finish_plot(fig, ax, xlabel: str, ylabel: str, title: str, path: Path, legend_fontsize: int = 8) -> Path:
    """Labels, grid, legend and title in the reports' one style; the PNG written whole, its path returned."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_fontsize)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _save_log_plot(fig, ax, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    ax.set_yscale("log")
    return finish_plot(fig, ax, xlabel, ylabel, title, path)


def _values(rows: list[dict[str, Any]], arm: str, column: str) -> list[float]:
    return [float(r[column]) for r in rows if r["arm"] == arm and isinstance(r.get(column), (int, float))
            and not isinstance(r.get(column), bool) and math.isfinite(r[column])]


def _swept_axis(plan: StudyPlan) -> tuple[list[str], list[float], Optional[str]]:
    """Arms placed on a numeric axis when every arm sets the same single numeric key (alpha, say);
    otherwise one slot per arm."""
    arms = list(plan.arms)
    keys = {tuple(o) for o in plan.arms.values()}
    if len(keys) == 1 and len(next(iter(keys))) == 1:
        key = next(iter(keys))[0]
        values = [plan.arms[a][key] for a in arms]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return arms, [float(v) for v in values], key
    return arms, [float(i) for i in range(len(arms))], None


def plot_quality(out: Path, plan: StudyPlan, rows: list[dict[str, Any]], columns: list[str]) -> Optional[Path]:
    if not columns or not rows:
        return None
    plt = _pyplot()
    arms, xs, key = _swept_axis(plan)
    across = min(len(columns), QUALITY_PANELS_PER_ROW)  # a MOSES study's thirty columns wrap onto rows
    down = -(-len(columns) // across)
    height = 3.4 * down  # inches
    fig, axes = plt.subplots(down, across, figsize=(max(5.0, 3.6 * across), height), squeeze=False)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for ax, column in zip(axes.flat, columns):
        for arm, x in zip(arms, xs):
            values = _values(rows, arm, column)
            if not values:
                continue
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            ax.errorbar([x], [statistics.fmean(values)], yerr=[sd], fmt="o", capsize=4, color="C0" if arm == plan.baseline else "C1")
            ax.scatter([x] * len(values), values, s=10, color="0.5", zorder=3)
        ax.set_xticks(xs, [str(v) for v in xs] if key else arms, rotation=0 if key else 30, fontsize=8)
        ax.set_xlabel(key.rsplit(".", 1)[-1] if key else "arm")
        ax.set_title(column, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{plan.name}: mean ± sd over seeds, grey dots the seeds, blue the baseline", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height))  # 0.3 inch for the title above the top row's titles
    return _save(fig, out / "quality.png")


def plot_losses(out: Path, plan: StudyPlan, rows: list[dict[str, Any]]) -> Optional[Path]:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    drawn = False
    for index, arm in enumerate(plan.arms):
        for seed_index, row in enumerate(r for r in rows if r["arm"] == arm):
            curve = loss_curve(out / "runs" / arm / f"seed{row['seed']}")
            if curve:
                ax.plot(*zip(*curve), color=f"C{index}", alpha=0.7, lw=1, label=arm if seed_index == 0 else None)
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    return _save_log_plot(fig, ax, "optimiser step", "training loss (logged)",
                          f"{plan.name}: training loss, one line per seed", out / "loss_curves.png")


def plot_cost(out: Path, plan: StudyPlan, rows: list[dict[str, Any]]) -> Optional[Path]:
    columns = [c for c in COST_LABELS if any(_values(rows, a, c) for a in plan.arms)]
    if not columns:
        return None
    plt = _pyplot()
    arms = list(plan.arms)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.4), squeeze=False)
    for ax, column in zip(axes[0], columns):
        means = [statistics.fmean(_values(rows, a, column)) if _values(rows, a, column) else 0.0 for a in arms]
        sds = [statistics.stdev(_values(rows, a, column)) if len(_values(rows, a, column)) > 1 else 0.0 for a in arms]
        ax.bar(range(len(arms)), means, yerr=sds, capsize=4, color=["C0" if a == plan.baseline else "C1" for a in arms])
        ax.set_xticks(range(len(arms)), arms, rotation=30, fontsize=8)
        ax.set_title(COST_LABELS[column], fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{plan.name}: cost per arm (mean ± sd over seeds)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out / "cost.png")


def plot_residuals(out: Path, plan: StudyPlan, rows: list[dict[str, Any]]) -> Optional[Path]:
    """QGFD's residual max|H_t - H_{t-1}| against iteration t, per layer, from the last validation of each
    arm's first seed (one batch); arms without QGFD layers have none."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    drawn = False
    for index, arm in enumerate(plan.arms):
        row = next((r for r in rows if r["arm"] == arm), None)
        files = sorted((out / "runs" / arm / f"seed{row['seed']}" / "logs").glob("version_*/qgfd_residuals.json")) if row else []
        if not files:
            continue
        records = json.loads(files[-1].read_text())
        if not records:
            continue
        for layer_index, (layer, trace) in enumerate(sorted(records[-1]["layers"].items())):
            positive = [(t + 1, r) for t, r in enumerate(trace) if r > 0]
            if positive:
                ax.plot(*zip(*positive), marker="o", ms=3, color=f"C{index}", alpha=0.4 + 0.6 / (1 + layer_index),
                        label=arm if layer_index == 0 else None)
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _save_log_plot(fig, ax, "QGFD iteration t", "max |H_t − H_{t−1}|",
                          f"{plan.name}: QGFD residual per layer (one line per layer, last validation, first seed)",
                          out / "residuals.png")
