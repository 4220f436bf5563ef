"""One sweep loop for images and molecules: every setting (fixed sampler steps, then each early-stopping
kind at each step count) is sampled, scored and appended to the results as it finishes."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from qgfd_gen.attention import override_qgfd

from .options import progress_bar
from .results import SweepResults


def sweep_settings(steps: list[int], qgfd_tol: list[float], exit_tol: list[float]) -> list[dict[str, Any]]:
    """Fixed sampler steps first, then each early-stopping kind at each step count."""
    settings = [{"setting": "fixed", "sampler_steps": s, "qgfd_tol": None, "exit_tol": None} for s in steps]
    settings += [{"setting": f"qgfd-tol={e:g}", "sampler_steps": s, "qgfd_tol": e, "exit_tol": None}
                 for e in qgfd_tol for s in steps]
    settings += [{"setting": f"exit-tol={t:g}", "sampler_steps": s, "qgfd_tol": None, "exit_tol": t}
                 for t in exit_tol for s in steps]
    return settings


def add_savings(row: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """What early stopping saved against the fixed setting at the same sampler steps (when that row exists)."""
    if row["setting"] == "fixed":
        return
    fixed = next((r for r in rows if r["setting"] == "fixed" and r["sampler_steps"] == row["sampler_steps"]), None)
    if fixed is None:
        return
    row["saved_network_evaluations"] = fixed["network_evaluations"] - row["network_evaluations"]
    if fixed.get("qgfd_iterations") and row.get("qgfd_iterations") is not None:
        row["saved_qgfd_iterations_pct"] = 100 * (1 - row["qgfd_iterations"] / fixed["qgfd_iterations"])
    row["saved_time_pct"] = 100 * (1 - row["seconds"] / fixed["seconds"]) if fixed["seconds"] else None


def run_sweep(model, args, results: SweepResults, sampler: str, draw: Callable, score: Callable,
              summary_keys: Iterable[str]) -> None:
    """Every setting not yet in `results`: sample (with the QGFD overrides of the setting), score, append."""
    for setting in sweep_settings(args.steps, args.qgfd_tol, args.exit_tol):
        key = {**setting, "sampler": sampler, "num_samples": args.num_samples, "seed": args.seed}
        if results.has(key):
            continue
        changes = {"tol": setting["qgfd_tol"]} if setting["qgfd_tol"] else {}
        if setting["qgfd_tol"] and args.qgfd_max_iterations:
            changes["iterations"] = args.qgfd_max_iterations
        with override_qgfd(model, **changes), progress_bar() as bar:
            task = bar.add_task(f"{setting['setting']} steps={setting['sampler_steps']}", total=args.num_samples)
            result = draw(setting, lambda n: bar.advance(task, n))
        row = {**key, "network_evaluations": result.network_evaluations, "qgfd_iterations": result.qgfd_iterations,
               "seconds": result.seconds, "checkpoint": str(args.ckpt)}
        row.update(score(result))
        add_savings(row, results.rows)
        results.append(row)
        print(summary(row, summary_keys))


def summary(row: dict[str, Any], keys: Iterable[str]) -> str:
    parts = [f"{row['setting']} steps={row['sampler_steps']}"] if "setting" in row else []
    if "network_evaluations" in row:
        parts.append(f"NFE={row['network_evaluations']:.1f}")
    parts += [f"{k}={row[k]:.4f}" for k in keys if isinstance(row.get(k), float)]
    if "seconds" in row:
        parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)
