"""The report of a study that sweeps a key other than the learning rate (the depth, say): every arm against the
baseline arm *at the same swept value*, seed by seed, for the validation loss, the collapse measures of the last
layer (models.CollapseMonitor), the sample scores and the cost; the collapse measures layer by layer; and the
verdict on the study's goal (`at`: the values judged; `also_above`: measures of which one must stay above the
baseline's there), with the plain negative beside it: where an arm's collapse measures fall below the baseline's
beyond the seed spread."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Optional

from qgfd_gen.io import write_text

from .cost import cost_section, read_clean_cost
from .plan import StudyPlan
from .plots import _pyplot, _save, finish_plot
from .report import _fmt, higher_is_better, paired_interval
from .sweep_report import _number, grid

SHOWN = ("val_loss", "train_loss", "consensus_distance_end", "effective_rank_end", "dirichlet_energy_end",
         "consensus_distance_init", "effective_rank_init", "mean_ratio", "vun", "max_grad_norm", "seconds_per_step")
COLLAPSE_END = ("consensus_distance_end", "effective_rank_end", "dirichlet_energy_end")
LAYER_MEASURES = ("consensus_distance", "effective_rank", "dirichlet_energy")


def values_of(table: dict[int, dict[float, dict[str, Any]]], value: float, column: str) -> dict[int, float]:
    """seed -> the column's value at one swept value (seeds without a finite value left out)."""
    found = {seed: _number(runs[value].get(column)) for seed, runs in table.items() if value in runs}
    return {seed: v for seed, v in found.items() if v is not None}


def mean_table(plan: StudyPlan, table: dict[str, dict[int, dict[float, dict[str, Any]]]], column: str) -> list[str]:
    (_, swept), = plan.sweep.items()
    lines = ["| arm | " + " | ".join(f"{v:g}" for v in swept) + " |", "|" + " --- |" * (len(swept) + 1)]
    for arm, seeds in table.items():
        cells = []
        for value in swept:
            found = list(values_of(seeds, float(value), column).values())
            cells.append("–" if not found else _fmt(statistics.fmean(found)) +
                         (f" ± {_fmt(statistics.stdev(found))}" if len(found) > 1 else ""))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def difference_table(plan: StudyPlan, table: dict[str, dict[int, dict[float, dict[str, Any]]]], column: str,
                     baseline: str) -> list[str]:
    (_, swept), = plan.sweep.items()
    lines = [f"| arm − {baseline} | " + " | ".join(f"{v:g}" for v in swept) + " |", "|" + " --- |" * (len(swept) + 1)]
    for arm, seeds in table.items():
        if arm == baseline:
            continue
        cells = []
        for value in swept:
            found = paired_interval(values_of(seeds, float(value), column), values_of(table[baseline], float(value), column))
            cells.append("–" if found is None else f"{found[0]:+.4g} [{found[1]:+.4g}, {found[2]:+.4g}]")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def better_beyond_spread(arm: dict[int, float], baseline: dict[int, float], column: str) -> Optional[bool]:
    """True when the paired 95% interval lies wholly on the better side of 0, False on the worse side, None
    otherwise (or with fewer than two paired seeds)."""
    found = paired_interval(arm, baseline)
    if found is None:
        return None
    _, low, high, _ = found
    if higher_is_better(column):
        low, high = -high, -low
    return True if high < 0 else False if low > 0 else None


def goal_lines(plan: StudyPlan, table: dict[str, dict[int, dict[float, dict[str, Any]]]]) -> list[str]:
    goal = plan.goal
    if goal is None:
        return []
    (_, swept), = plan.sweep.items()
    at = goal.at or [float(v) for v in swept]
    against = goal.against[0]
    lines = ["## The goal", "",
             f"Stated before the study ran: {'one of ' + ', '.join(goal.candidates) if goal.candidates else 'an arm'} whose {' or '.join(goal.metrics)} at {', '.join(f'{v:g}' for v in at)} "
             f"is better than {against}'s at the same value beyond the seed spread (paired 95% interval)"
             + (f", while one of {', '.join(goal.also_above)} stays above {against}'s (mean over seeds)"
                if goal.also_above else "") + ".", ""]
    met: list[str] = []
    for arm, seeds in table.items():
        if arm in goal.against or (goal.candidates and arm not in goal.candidates):
            continue
        reasons, wins = [], []
        for value in at:
            for metric in goal.metrics:
                mine, theirs = values_of(seeds, value, metric), values_of(table.get(against, {}), value, metric)
                better = better_beyond_spread(mine, theirs, metric)
                found = paired_interval(mine, theirs)
                means = {m: (_mean(values_of(seeds, value, m)), _mean(values_of(table[against], value, m)))
                         for m in goal.also_above}
                above = [m for m, (a, b) in means.items() if a is not None and b is not None and a > b]
                ok = better is True and (not goal.also_above or bool(above))
                wins.append(ok)
                reasons.append(f"{metric} at {value:g}: " + ("–" if found is None else
                               f"{found[0]:+.4g} [{found[1]:+.4g}, {found[2]:+.4g}]")
                               + (f", above {against} in {', '.join(above) or 'none'}" if goal.also_above else ""))
        if any(wins):
            met.append(arm)
        lines.append(f"- **{arm}** {'meets' if any(wins) else 'does not meet'} the goal: {'; '.join(reasons)}")
    lines += ["", f"**Verdict: {', '.join(met)} meet{'s' if len(met) == 1 else ''} the goal.**" if met
              else "**Verdict: no arm meets the goal.**", "", *negative_lines(plan, table, against), ""]
    return lines


def negative_lines(plan: StudyPlan, table: dict[str, dict[int, dict[float, dict[str, Any]]]], against: str) -> list[str]:
    """Where an arm's last layer is more collapsed than the baseline's beyond the seed spread, and where less."""
    (_, swept), = plan.sweep.items()
    worse, better = [], []
    for arm, seeds in table.items():
        if arm == against:
            continue
        for value in swept:
            for measure in COLLAPSE_END:
                mine, theirs = values_of(seeds, float(value), measure), values_of(table[against], float(value), measure)
                verdict = better_beyond_spread(mine, theirs, measure)
                if verdict is None:
                    continue
                found = paired_interval(mine, theirs)
                (better if verdict else worse).append(f"{arm} at {value:g}: {measure} {found[0]:+.4g} "
                                                      f"[{found[1]:+.4g}, {found[2]:+.4g}]")
    return [f"The negative: last layer more collapsed than {against}'s beyond the seed spread: "
            + ("; ".join(worse) if worse else "nowhere") + ".", "",
            f"Less collapsed than {against}'s beyond the seed spread: " + ("; ".join(better) if better else "nowhere") + "."]


def _mean(values: dict[int, float]) -> Optional[float]:
    return statistics.fmean(values.values()) if values else None


def layer_profiles(out: Path, arm: str, seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    """seed-wise first and last probes of a run's collapse.json ({"init": [...], "end": [...]})."""
    found: dict[str, list[dict[str, Any]]] = {"init": [], "end": []}
    for seed in seeds:
        files = sorted((out / "runs" / arm / f"seed{seed}" / "logs").glob("version_*/collapse.json"),
                       key=lambda p: int(p.parent.name.split("_")[1]))
        if files:
            probes = json.loads(files[-1].read_text())["probes"]
            found["init"].append(probes[0])
            found["end"].append(probes[-1])
    return found


def plot_layers(out: Path, plan: StudyPlan) -> Optional[Path]:
    """Each collapse measure against the layer index: one row per swept value, arms in colour, the mean over seeds
    at initialisation (dashed) and at the end (solid)."""
    (_, swept), = plan.sweep.items()
    named = list(dict.fromkeys(base for base, _ in plan.sweep_of.values()))
    plt = _pyplot()
    fig, axes = plt.subplots(len(swept), len(LAYER_MEASURES), figsize=(4.2 * len(LAYER_MEASURES), 2.8 * len(swept)),
                             squeeze=False)
    drawn = False
    for row, value in enumerate(swept):
        for index, base in enumerate(named):
            arm = next((a for a, (b, v) in plan.sweep_of.items() if b == base and float(v) == float(value)), None)
            profiles = layer_profiles(out, arm, plan.seeds) if arm else {"init": [], "end": []}
            for when, style in (("init", "--"), ("end", "-")):
                if not profiles[when]:
                    continue
                for column, measure in enumerate(LAYER_MEASURES):
                    curves = [p[measure] for p in profiles[when]]
                    mean = [statistics.fmean(c[i] for c in curves) for i in range(min(map(len, curves)))]
                    axes[row][column].plot(range(len(mean)), mean, style, lw=1, color=f"C{index}",
                                           label=base if when == "end" else None)
                    drawn = True
        for column, measure in enumerate(LAYER_MEASURES):
            axes[row][column].set_title(f"{measure.replace('_', ' ')}, {value:g} layers", fontsize=9)
            axes[row][column].set_yscale("log")
            axes[row][column].grid(alpha=0.3)
    if not drawn:
        plt.close(fig)
        return None
    axes[0][0].legend(fontsize=7)
    for axis in axes[-1]:
        axis.set_xlabel("layer (0: the embedding)")
    fig.suptitle(f"{plan.name}: each measure layer by layer, mean over seeds (dashed: at initialisation, solid: after "
                 f"training)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out / "collapse_by_layer.png")


def plot_against_sweep(out: Path, plan: StudyPlan, table: dict[str, dict[int, dict[float, dict[str, Any]]]],
                       column: str) -> Optional[Path]:
    (key, swept), = plan.sweep.items()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    drawn = False
    for index, (arm, seeds) in enumerate(table.items()):
        points = [(float(v), _mean(values_of(seeds, float(v), column))) for v in swept]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            ax.plot(*zip(*points), marker="o", ms=3, color=f"C{index}", label=arm)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log", base=2)
    short = key.rsplit(".", 1)[-1]
    return finish_plot(fig, ax, short, column.replace("_", " "), f"{plan.name}: {column} against {short}, mean over seeds",
                       out / f"{column}_vs_{short}.png", 7)


def write_value_report(out: Path, plan: StudyPlan, rows: list[dict[str, Any]]) -> Path:
    (key, swept), = plan.sweep.items()
    table = grid(plan, rows)
    baseline = plan.sweep_of[plan.baseline][0]
    shown = [c for c in SHOWN if any(_number(r.get(c)) is not None for r in rows)]
    plots = [plot_layers(out, plan), *(plot_against_sweep(out, plan, table, c) for c in ("val_loss", "consensus_distance_end"))]
    named = list(dict.fromkeys(base for base, _ in plan.sweep_of.values()))
    diverged = [f"{r['arm']} seed {r['seed']}" for r in rows if r.get("diverged")]
    text = [f"# Study {plan.name}", "",
            f"Base config `{plan.base}`; arms {', '.join(named)}, each at {key} = {', '.join(f'{v:g}' for v in swept)}; "
            f"seeds {plan.seeds}; every run {', '.join(f'{v:g} {k}' for k, v in plan.budget.items())}. "
            f"{len(rows)} of {len(plan.arms) * len(plan.seeds)} runs done. Runs that diverged: "
            f"{', '.join(diverged) or 'none'}.", "", *__doc__.split("\n\n", 1)[0].splitlines(), ""]
    for column in shown:
        text += [f"## {column} (mean ± sd over seeds; {'higher' if higher_is_better(column) else 'lower'} is better)", "",
                 *mean_table(plan, table, column), ""]
        text += [f"Paired difference from {baseline} at the same {key.rsplit('.', 1)[-1]} (95% interval):", "",
                 *difference_table(plan, table, column, baseline), ""]
    text += [*goal_lines(plan, table), *cost_section(plan, read_clean_cost(out, plan)),
             "## Plots", "", *[f"![{p.stem}]({p.name})" for p in plots if p is not None], ""]
    return write_text(out / "report.md", "\n".join(text))
