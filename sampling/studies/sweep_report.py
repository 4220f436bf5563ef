"""The report of a sweep study (`sweep:` over the learning rate, say): loss against the swept value per arm, the
learning-rate sensitivity of Wortsman et al. (2023), the largest stable value per arm and seed, attention entropy
over training, and the verdict on the study's goal.

Definitions (per arm and seed, over the swept values eta):
- a run's loss L(eta) is the mean of its last ten training losses; L0(eta) its first training loss, of the model as
  initialised; a run *diverged* when training stopped on non-finite losses or L(eta) is not finite or above L0;
- sensitivity = mean over eta of min(L(eta), L0(eta)) - min over eta of L(eta) (a diverged run counts L0): lower
  is more robust to the learning rate;
- the largest stable value: the largest eta such that no run at eta or below diverged;
- the best loss: min over eta of L(eta) among runs that did not diverge.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Optional

from qgfd_gen.io import write_text

from .cost import cost_section, read_clean_cost
from .curves import loss_curve
from .plan import StudyPlan
from .plots import _pyplot, finish_plot
from .report import _fmt, paired_interval

ENTROPY_COLUMN = "attn/min_entropy_pT"
GOAL_METRICS = ("largest_stable_lr", "lr_sensitivity", "best_loss")  # what a sweep study's goal may name


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def grid(plan: StudyPlan, rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[float, dict[str, Any]]]]:
    """named arm -> seed -> swept value -> row."""
    found: dict[str, dict[int, dict[float, dict[str, Any]]]] = {}
    for row in rows:
        if row["arm"] in plan.sweep_of:
            base, value = plan.sweep_of[row["arm"]]
            found.setdefault(base, {}).setdefault(row["seed"], {})[float(value)] = row
    return found


def run_losses(row: dict[str, Any]) -> tuple[Optional[float], Optional[float], bool]:
    """(L, L0, diverged) of one run."""
    initial, final = _number(row.get("initial_loss")), _number(row.get("final_loss_last10"))
    diverged = bool(row.get("diverged")) or final is None or (initial is not None and final > initial)
    return final, initial, diverged


def seed_measures(runs: dict[float, dict[str, Any]], values: list[float]) -> dict[str, Optional[float]]:
    """Sensitivity, largest stable value and best loss of one arm and seed (None where its runs are missing)."""
    if any(v not in runs for v in values):
        return {"sensitivity": None, "largest_stable": None, "best_loss": None}
    losses = {v: run_losses(runs[v]) for v in values}
    finite = [final for final, _, diverged in losses.values() if not diverged and final is not None]
    best = min(finite) if finite else None
    capped = []
    for final, initial, diverged in losses.values():
        start = initial if initial is not None else final
        capped.append(start if diverged else min(final, start) if start is not None else final)
    sensitivity = (statistics.fmean(capped) - best) if best is not None and None not in capped else None
    stable = None
    for value in sorted(values):
        if losses[value][2]:
            break
        stable = value
    return {"sensitivity": sensitivity, "largest_stable": stable, "best_loss": best}


def measures(plan: StudyPlan, rows: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Optional[float]]]]:
    """named arm -> seed -> its sensitivity, largest stable value and best loss."""
    values = [float(v) for v in next(iter(plan.sweep.values()))]
    return {arm: {seed: seed_measures(runs, values) for seed, runs in seeds.items()}
            for arm, seeds in grid(plan, rows).items()}


def _per_seed(found: dict[int, dict[str, Optional[float]]], key: str) -> dict[int, float]:
    return {seed: value[key] for seed, value in found.items() if value[key] is not None}


def loss_table(plan: StudyPlan, rows: list[dict[str, Any]]) -> list[str]:
    (key, values), = plan.sweep.items()
    table = grid(plan, rows)
    head = f"| arm | " + " | ".join(f"{v:g}" for v in values) + " |"
    lines = [head, "|" + " --- |" * (len(values) + 1)]
    for arm in table:
        cells = []
        for value in values:
            losses = [run_losses(seeds[float(value)]) for seeds in table[arm].values() if float(value) in seeds]
            finals = [final for final, _, diverged in losses if not diverged]
            diverged = sum(diverged for _, _, diverged in losses)
            mean = _fmt(statistics.fmean(finals)) if finals else "–"
            cells.append(mean + (f" ({diverged}/{len(losses)} div.)" if diverged else ""))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def measure_table(plan: StudyPlan, found: dict[str, dict[int, dict[str, Optional[float]]]], against: str) -> list[str]:
    lines = ["| arm | sensitivity (mean ± sd) | vs " + against + " [95%] | largest stable, per seed | best loss | "
             "vs " + against + " [95%] |", "| --- | --- | --- | --- | --- | --- |"]
    for arm, seeds in found.items():
        sens, best = _per_seed(seeds, "sensitivity"), _per_seed(seeds, "best_loss")
        stable = [seeds[s]["largest_stable"] for s in sorted(seeds)]
        spread = (f"{_fmt(statistics.fmean(sens.values()))} ± {_fmt(statistics.stdev(sens.values()))}"
                  if len(sens) > 1 else _fmt(next(iter(sens.values()), None)))
        cells = [spread, _interval(sens, _per_seed(found.get(against, {}), "sensitivity")),
                 ", ".join("none" if v is None else f"{v:g}" for v in stable),
                 _fmt(statistics.fmean(best.values())) if best else "–",
                 _interval(best, _per_seed(found.get(against, {}), "best_loss"))]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def _interval(arm: dict[int, float], baseline: dict[int, float]) -> str:
    found = paired_interval(arm, baseline)
    return "–" if found is None else f"{found[0]:+.4g} [{found[1]:+.4g}, {found[2]:+.4g}]"


def beats(found: dict[str, dict[int, dict[str, Optional[float]]]], arm: str, other: str, margin: float = 0.0
          ) -> tuple[bool, list[str]]:
    """Whether `arm` is more stable than `other` in every seed they share: a higher largest stable value, or a
    sensitivity lower by more than `margin` of the other's; with the per-seed reasons."""
    reasons, every = [], True
    for seed in sorted(set(found.get(arm, {})) & set(found.get(other, {}))):
        a, b = found[arm][seed], found[other][seed]
        higher = (a["largest_stable"] or 0) > (b["largest_stable"] or 0)
        lower = (a["sensitivity"] is not None and b["sensitivity"] is not None
                 and a["sensitivity"] < (1 - margin) * b["sensitivity"])
        every &= higher or lower
        reasons.append(f"seed {seed}: largest stable {a['largest_stable']} vs {b['largest_stable']}, sensitivity "
                       f"{_fmt(a['sensitivity'])} vs {_fmt(b['sensitivity'])}")
    return every and bool(reasons), reasons


def goal_lines(plan: StudyPlan, found: dict[str, dict[int, dict[str, Optional[float]]]]) -> list[str]:
    goal = plan.goal
    if goal is None:
        return []
    against = goal.against[0]
    lines = ["## The goal", "",
             f"Stated before the study ran: an arm whose largest stable value is higher than {against}'s, or whose "
             f"sensitivity is lower by more than {goal.margin:.0%} of {against}'s, in every seed, with a best loss no "
             f"worse than {against}'s (the paired interval of the best loss does not lie above 0).", ""]
    met = []
    for arm in found:
        if arm in goal.against:
            continue
        more_stable, reasons = beats(found, arm, against, goal.margin)
        best = paired_interval(_per_seed(found[arm], "best_loss"), _per_seed(found[against], "best_loss"))
        no_worse = best is None or best[1] <= 0
        verdict = "meets the goal" if more_stable and no_worse else "does not meet the goal"
        if more_stable and no_worse:
            met.append(arm)
        lines.append(f"- **{arm}** {verdict}: {'; '.join(reasons) or 'no seed paired yet'}"
                     + ("" if no_worse else f"; its best loss is worse beyond the seed spread ({_fmt(best[0])})"))
    lines += ["", f"**Verdict: {', '.join(met)} meet{'s' if len(met) == 1 else ''} the goal.**" if met
              else "**Verdict: no arm meets the goal.**", ""]
    for with_arm, without in goal.pairs:
        helps, reasons = beats(found, with_arm, without, goal.margin)
        lines.append(f"- **{with_arm}** against **{without}**: " + ("more stable in every seed" if helps else
                     "not more stable in every seed") + f" ({'; '.join(reasons) or 'no seed paired yet'}).")
    return lines + [""]


def plot_loss_against_sweep(out: Path, plan: StudyPlan, rows: list[dict[str, Any]]) -> Optional[Path]:
    (key, values), = plan.sweep.items()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for index, (arm, seeds) in enumerate(grid(plan, rows).items()):
        xs, ys, crosses = [], [], []
        for value in values:
            runs = [s[float(value)] for s in seeds.values() if float(value) in s]
            capped = []
            for run in runs:
                final, initial, diverged = run_losses(run)
                capped.append(initial if diverged else final)
                if diverged:
                    crosses.append((value, initial))
            capped = [c for c in capped if c is not None]
            if capped:
                xs.append(value)
                ys.append(statistics.fmean(capped))
        ax.plot(xs, ys, marker="o", ms=3, color=f"C{index}", label=arm)
        if crosses:
            ax.scatter(*zip(*[(x, y) for x, y in crosses if y is not None]), marker="x", color=f"C{index}", s=30)
    ax.set_xscale("log")
    short = key.rsplit(".", 1)[-1]
    return finish_plot(fig, ax, short, "final training loss (diverged: loss at initialisation, x)",
                       f"{plan.name}: loss against {short}, mean over seeds", out / "loss_vs_sweep.png", 7)


def largest_common_stable(found: dict[str, dict[int, dict[str, Optional[float]]]], arm: str) -> Optional[float]:
    stable = [v["largest_stable"] for v in found.get(arm, {}).values()]
    return None if not stable or None in stable else min(stable)


def plot_entropy(out: Path, plan: StudyPlan, value: Optional[float]) -> Optional[Path]:
    """The lowest attention entropy of p_T over training, each arm at `value`, its first seed."""
    if value is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    drawn = False
    for index, (arm, (base, swept)) in enumerate((a, b) for a, b in plan.sweep_of.items() if float(b[1]) == value):
        curve = loss_curve(out / "runs" / arm / f"seed{plan.seeds[0]}", ENTROPY_COLUMN)
        if curve:
            ax.plot(*zip(*curve), color=f"C{index}", lw=1, label=base)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    return finish_plot(fig, ax, "optimiser step", "lowest attention entropy of p_T (nats)",
                       f"{plan.name}: entropy at {value:g}, the largest value the baseline survives",
                       out / "entropy_over_training.png", 7)


def write_sweep_report(out: Path, plan: StudyPlan, rows: list[dict[str, Any]]) -> Path:
    (key, values), = plan.sweep.items()
    found = measures(plan, rows)
    baseline = plan.sweep_of[plan.baseline][0]
    common = largest_common_stable(found, baseline)
    plots = [p for p in (plot_loss_against_sweep(out, plan, rows), plot_entropy(out, plan, common)) if p is not None]
    named = list(dict.fromkeys(base for base, _ in plan.sweep_of.values()))
    text = [
        f"# Study {plan.name}", "",
        f"Base config `{plan.base}`; arms {', '.join(named)}, each at {key} = {', '.join(f'{v:g}' for v in values)}; "
        f"seeds {plan.seeds}; every run {', '.join(f'{v:g} {k}' for k, v in plan.budget.items())}. "
        f"{len(rows)} of {len(plan.arms) * len(plan.seeds)} runs done.", "",
        *__doc__.split("\n\n", 1)[1].splitlines(), "",
        f"## Final training loss against {key} (mean over seeds)", "", *loss_table(plan, rows), "",
        "## Sensitivity, largest stable value, best loss", "",
        f"Paired intervals are over seeds, each arm against {baseline} (95%, Student t).", "",
        *measure_table(plan, found, baseline), "",
        *goal_lines(plan, found),
        *cost_section(plan, read_clean_cost(out, plan)),
        "## Plots", "", *[f"![{p.stem}]({p.name})" for p in plots], "",
    ]
    return write_text(out / "report.md", "\n".join(text))
