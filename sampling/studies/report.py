"""A study's report: report.md with mean ± std per arm, each arm's
difference from the baseline arm with a 95% paired t interval over seeds, and plots of quality, training
loss, cost and QGFD's residuals."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Optional

from qgfd_gen.io import write_text

from .notes import code_note, network_note, threads_note
from .cost import COST_FILE, CleanCost, cost_section, read_clean_cost
from .plan import StudyPlan
from .plots import plot_cost, plot_losses, plot_quality, plot_residuals

# metric -> True when higher is better, under the heading its table has in a report (a MOSES study has some
# thirty columns: one table of them all would not be read)
QUALITY_GROUPS: dict[str, dict[str, bool]] = {
    "Quality": {"validity": True, "uniqueness": True, "novelty": True, "fcd": False, "connected": True,
                "nspdk_mmd": False, "fid": False, "kid": False, "is": True, "nll_bpd": False,
                "vun": True, "valid": True, "unique": True, "novel": True, "degree_mmd": False, "clustering_mmd": False,
                "orbit_mmd": False, "spectrum_mmd": False, "mean_ratio": False, "planar": True, "acyclic": True},
    # diversity beside quality: what an alpha sweep needs to show a quality-diversity trade-off
    "Precision and diversity": {"precision": True, "density": True, "recall": True, "coverage": True,
                                "intdiv1": True, "intdiv2": True, "unique_1k": True, "unique_10k": True},
    "MOSES's scorecard (against Test and TestSF)": {
        "filters": True, **{f"{m}_{ref}": True for m in ("snn", "frag", "scaf") for ref in ("test", "testsf")}},
    "Property distances (Wasserstein-1, against Test and TestSF)": {
        f"{p}_w1_{ref}": False for p in ("logp", "sa", "qed", "weight") for ref in ("test", "testsf")},
}
QUALITY = {metric: up for group in QUALITY_GROUPS.values() for metric, up in group.items()}
COST_GROUP = "Cost and stability"
COST = {"seconds_per_step": False, "step_memory_mb": False, "train_loss": False, "val_loss": False}
# what models.StabilityMonitor summarises of a run (sampling.studies.runs.stability_summary)
STABILITY = {"max_grad_norm": False, "grad_spikes": False, "loss_spikes": False, "clipped_steps": False,
             "nonfinite_steps": False, "min_entropy_pT": True, "min_entropy_p0": True, "max_logit": False}
# what models.CollapseMonitor summarises of a run (sampling.studies.runs.collapse_summary): the last layer's node
# states at initialisation and at the end; higher is further from collapse
COLLAPSE = {f"{name}_{when}": True for name in ("consensus_distance", "effective_rank", "dirichlet_energy")
            for when in ("init", "end")}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Quality metrics present (with any @steps suffix), in a fixed order."""
    present = {k for r in rows for k, v in r.items() if _finite(v)}
    return [c for m in QUALITY for c in sorted(present) if c == m or c.startswith(m + "@")]


def column_groups(columns: list[str]) -> list[tuple[str, list[str]]]:
    """The columns under their tables' headings, in order of first appearance (quality first, cost last)."""
    heading = {**{m: g for g, metrics in QUALITY_GROUPS.items() for m in metrics},
               **{m: COST_GROUP for m in (*COST, *STABILITY)}}
    groups: dict[str, list[str]] = {}
    for column in columns:
        groups.setdefault(heading.get(column.split("@")[0], "Other"), []).append(column)
    return list(groups.items())


def grouped(tables: list[tuple[str, str]]) -> list[str]:
    """Markdown for tables, each under its heading when there is more than one."""
    if len(tables) == 1:
        return [tables[0][1], ""]
    return [line for heading, table in tables for line in (f"### {heading}", "", table, "")]


def higher_is_better(column: str) -> bool:
    return {**QUALITY, **COST, **STABILITY, **COLLAPSE}.get(column.split("@")[0], False)


def mean_std(values: list[float]) -> tuple[float, Optional[float]]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _t_quantile(seeds: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, seeds - 1))


def paired_differences(arm: dict[int, float], baseline: dict[int, float]) -> list[float]:
    """Arm - baseline, seed by seed, over the seeds both have."""
    return [arm[s] - baseline[s] for s in arm if s in baseline]


def paired_interval(arm: dict[int, float], baseline: dict[int, float]) -> Optional[tuple[float, float, float, int]]:
    """Mean difference arm - baseline over the seeds both have, with a 95% Student t interval on the
    per-seed differences (paired: each seed trains both arms on the same data order and noise)."""
    diffs = paired_differences(arm, baseline)
    if len(diffs) < 2:
        return None
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = _t_quantile(len(diffs)) * sd / math.sqrt(len(diffs))
    return mean, mean - half, mean + half, len(diffs)


def per_arm(rows: list[dict[str, Any]], column: str) -> dict[str, dict[int, float]]:
    arms: dict[str, dict[int, float]] = {}
    for r in rows:
        if _finite(r.get(column)):
            arms.setdefault(r["arm"], {})[r["seed"]] = float(r[column])
    return arms


def _fmt(value: Optional[float]) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"


def summary_table(plan: StudyPlan, rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| arm | seeds | " + " | ".join(f"{c} {'↑' if higher_is_better(c) else '↓'}" for c in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    for arm in plan.arms:
        cells = []
        for column in columns:
            values = list(per_arm(rows, column).get(arm, {}).values())
            if not values:
                cells.append("–")
                continue
            mean, sd = mean_std(values)
            cells.append(_fmt(mean) + (f" ± {_fmt(sd)}" if sd is not None else ""))
        seeds = sorted({r["seed"] for r in rows if r["arm"] == arm})
        lines.append(f"| {arm} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def difference_table(plan: StudyPlan, rows: list[dict[str, Any]], columns: list[str]) -> tuple[str, list[str]]:
    """Arm minus baseline per column, with its interval; and the findings whose interval excludes 0."""
    lines = ["| arm − " + plan.baseline + " | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    findings = []
    for arm in plan.arms:
        if arm == plan.baseline:
            continue
        cells = []
        for column in columns:
            data = per_arm(rows, column)
            interval = paired_interval(data.get(arm, {}), data.get(plan.baseline, {}))
            if interval is None:
                single = single_difference(data.get(arm, {}), data.get(plan.baseline, {}))
                cells.append("–" if single is None else f"{_signed(single)} (1 seed)")
                continue
            mean, lo, hi, n = interval
            cells.append(f"{_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]")
            if lo > 0 or hi < 0:
                better = (mean > 0) == higher_is_better(column)
                findings.append(f"{arm}: {column} {'better' if better else 'worse'} than {plan.baseline} by "
                                f"{_fmt(abs(mean))} (95% interval {_fmt(lo)} to {_fmt(hi)}, {n} seeds)")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines), findings


def single_difference(arm: dict[int, float], baseline: dict[int, float]) -> Optional[float]:
    """Arm - baseline when exactly one seed has both: a pilot's difference, shown without an interval."""
    diffs = paired_differences(arm, baseline)
    return diffs[0] if len(diffs) == 1 else None


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + _fmt(value)


def ranking(plan: StudyPlan, rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """Arms best first on each quality column: what a one-seed pilot can say (it has no interval)."""
    lines = []
    for column in columns:
        values = {arm: statistics.fmean(v.values()) for arm, v in per_arm(rows, column).items()}
        if len(values) < 2:
            continue
        order = sorted(values, key=values.get, reverse=higher_is_better(column))
        lines.append(f"By {column} ({'higher' if higher_is_better(column) else 'lower'} is better): "
                     + ", ".join(f"{arm} {_fmt(values[arm])}" for arm in order))
    return lines


def goal_section(plan: StudyPlan, rows: list[dict[str, Any]], cost: Optional[CleanCost] = None) -> list[str]:
    """The study's stated goal, arm by arm: the intervals it rests on and a plain verdict. The step-time limit
    is judged on the cost timed apart when there is one, else on the runs' own step times."""
    goal = plan.goal
    if goal is None:
        return []
    reference = goal.against[0]
    columns = [c for c in metric_columns(rows) if c.split("@")[0] in goal.metrics]
    speed = (dict(cost.step_ms) if cost is not None else
             {arm: statistics.fmean(v.values()) for arm, v in per_arm(rows, "seconds_per_step").items()})
    timed = (f"timed apart from the runs, {cost.path.name}" if cost is not None else
             f"timed in the study's own runs; a {COST_FILE} beside the report, from `qgfd-bench structure "
             f"--study` with nothing else running, would replace them")
    lines = ["## The goal", "",
             f"An arm meets it when, for one of {', '.join(goal.metrics)}, its paired 95% interval excludes 0 in its "
             f"favour against {' and against '.join(goal.against)}, at no more than {goal.max_step_ratio:g}x "
             f"{reference}'s step time ({timed}).", ""]
    done, planned = progress(plan, rows)
    so_far = " so far" if done < planned else ""  # an unfinished study's intervals are not its verdict
    met = []
    for arm in (a for a in plan.arms if a not in goal.against):
        parts, favoured = [], []
        for column in columns:
            data, wins = per_arm(rows, column), []
            for other in goal.against:
                interval = paired_interval(data.get(arm, {}), data.get(other, {}))
                if interval is None:
                    parts.append(f"{column} vs {other}: no interval")
                    wins.append(False)
                    continue
                mean, lo, hi, _ = interval
                wins.append((lo > 0) if higher_is_better(column) else (hi < 0))
                parts.append(f"{column} vs {other} {_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]")
            if all(wins):
                favoured.append(column)
        ratio = speed[arm] / speed[reference] if speed.get(arm) and speed.get(reference) else None
        fast = ratio is not None and ratio <= goal.max_step_ratio
        verdict = ("meets the goal" if favoured and fast else "does not meet the goal") + so_far
        why = (f"better on {', '.join(favoured)}" if favoured else f"no {'/'.join(goal.metrics)} interval in its favour "
               f"against all of {', '.join(goal.against)}") + (f"; step time {ratio:.2f}x {reference}" if ratio else "")
        lines.append(f"- **{arm}** {verdict} ({why}): " + "; ".join(parts))
        if favoured and fast:
            met.append(arm)
    if so_far:
        closing = (f"**No verdict yet**: {done} of {planned} runs are done; the goal is judged when every arm has "
                   f"every seed" + (f" (meeting it so far: {', '.join(met)})." if met else "."))
    elif met:
        closing = f"Arms meeting the goal: {', '.join(met)}."
    else:
        closing = (f"**No arm meets the goal**: none is better than all of {', '.join(goal.against)} beyond the seed "
                   "spread at the allowed cost.")
    lines += ["", closing, ""]
    return lines


def progress(plan: StudyPlan, rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(runs done, runs planned): each of the plan's arm and seed pairs counts once."""
    done = {(r["arm"], r["seed"]) for r in rows if r["arm"] in plan.arms and r["seed"] in plan.seeds}
    return len(done), len(plan.arms) * len(plan.seeds)


def paired_seeds(plan: StudyPlan, rows: list[dict[str, Any]]) -> int:
    """The most seeds any arm shares with the baseline: below 2, no paired interval exists yet."""
    seeds: dict[str, set[int]] = {}
    for row in rows:
        seeds.setdefault(row["arm"], set()).add(row["seed"])
    baseline = seeds.get(plan.baseline, set())
    return max((len(s & baseline) for arm, s in seeds.items() if arm != plan.baseline), default=0)


def write_report(out: Path, plan: StudyPlan, rows: list[dict[str, Any]]) -> Path:
    clean_cost = read_clean_cost(out, plan)
    quality = metric_columns(rows)
    cost = [c for c in (*COST, *STABILITY) if any(_finite(r.get(c)) for r in rows)]
    groups = column_groups(quality + cost)
    summaries = [(heading, summary_table(plan, rows, columns)) for heading, columns in groups]
    differences, findings = [], []
    for heading, columns in groups:
        table, found = difference_table(plan, rows, columns)
        differences.append((heading, table))
        findings += found
    plots = [p for p in (plot_quality(out, plan, rows, quality), plot_losses(out, plan, rows),
                         plot_cost(out, plan, rows), plot_residuals(out, plan, rows)) if p is not None]
    budget = ", ".join(f"{v:g} {k}" for k, v in plan.budget.items())
    options = " ".join(plan.eval_options())
    seeds = len(plan.seeds)
    paired, (done, planned) = paired_seeds(plan, rows), progress(plan, rows)
    t_note = (f"With {seeds} seeds t = {_t_quantile(seeds):.2f}, so only differences large against the seed spread show."
              if seeds > 1 else "With one seed there is no interval.")
    if 1 < paired < seeds:  # an unfinished study: its intervals rest on the seeds it has
        t_note += f" So far at most {paired} seeds are paired, where t = {_t_quantile(paired):.2f}."
    text = [
        f"# Study {plan.name}", "",
        f"Base config `{plan.base}`; {len(plan.arms)} arms, seeds {plan.seeds}; the same budget for every run: "
        f"{budget}. " + (f"Evaluation of each run's final checkpoint: `qgfd-eval {plan.kind} {options}`." if plan.evaluates
                     else "Training only: no evaluation."), "",
        *network_note(rows),
        *code_note(rows),
        "Arms (overrides of the base config):", "",
        *[f"- **{arm}**: " + (", ".join(f"`{k}={v}`" for k, v in o.items()) or "the base config") for arm, o in plan.arms.items()],
        "", f"## Mean ± standard deviation over seeds ({len(rows)} run{'s' if len(rows) != 1 else ''})", "",
        *grouped(summaries),
        "Cost columns: `seconds_per_step` is the median wall time of a training batch (data loading included), "
        "`step_memory_mb` the peak of the tensors one training step creates (activations, gradients, temporaries; "
        "parameters and optimiser state not included), counted tensor by tensor, so the same on every device."
        + threads_note(rows),
        "", f"## Difference from {plan.baseline} (95% interval)", "",
        "Each arm minus the baseline arm, seed by seed (paired: the same seed gives both arms the same data "
        "order and noise), with a Student t interval on the per-seed differences: mean ± t(0.975, n−1) · sd / √n. "
        + t_note, "",
        *grouped(differences),
        "## What it says", "",
        *([f"- {f}" for f in findings] or
          ([f"- No arm differs from {plan.baseline} by more than the seed spread on any column (every 95% interval "
            f"contains 0)."] if paired > 1 else
           [f"- No arm has two seeds paired with {plan.baseline} yet ({done} of {planned} runs "
            "done): no interval so far."] if seeds > 1 else
           ["- One seed per arm: every difference above is one run against one run, with no interval. It can rank "
            "arms (a pilot's use), not say whether a difference is larger than the seed spread.",
            *[f"- {line}" for line in ranking(plan, rows, quality)]])),
        "", *cost_section(plan, clean_cost), *goal_section(plan, rows, clean_cost),
        "## Plots", "", *[f"![{p.stem}]({p.name})" for p in plots], "",
    ]
    return write_text(out / "report.md", "\n".join(text))
