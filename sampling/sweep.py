"""One sweep loop for images and molecules: every setting (fixed sampler steps, then each early-stopping
kind at each step count, for each sampler; then the adaptive sampler's tolerances) is sampled, scored and
appended to the results as it finishes."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from qgfd_gen.attention import override_qgfd
from qgfd_gen.checkpoints import check_file
from qgfd_gen.io import check_outputs, file_digest
from qgfd_gen.locks import folder_lock

from .distributed import Shard, launch
from .progress import progress_bar
from .results import SweepResults
from .settings import SweepSettings


def adaptive_label(rtol: float, atol: float, end_log_snr: Optional[float] = None) -> str:
    return f"adaptive rtol={rtol:g} atol={atol:g}" + (f" end={end_log_snr:g}" if end_log_snr is not None else "")


def sweep_settings(samplers: list[str], steps: list[int], qgfd_tol: list[float], exit_tol: list[float],
                   rtol: Iterable[float] = (), atol: Iterable[float] = (),
                   end_log_snr: Optional[float] = None) -> list[dict[str, Any]]:
    """For each fixed-step sampler: its fixed steps, then each early-stopping kind at each step count; then
    the adaptive sampler at each (rtol, atol), ending at end_log_snr (None: the cleanest timestep)."""
    settings = []
    for sampler in (s for s in samplers if s != "adaptive"):
        base = {"sampler": sampler, "qgfd_tol": None, "exit_tol": None, "rtol": None, "atol": None}
        settings += [{**base, "setting": "fixed", "sampler_steps": s} for s in steps]
        settings += [{**base, "setting": f"qgfd-tol={e:g}", "sampler_steps": s, "qgfd_tol": e} for e in qgfd_tol for s in steps]
        settings += [{**base, "setting": f"exit-tol={t:g}", "sampler_steps": s, "exit_tol": t} for t in exit_tol for s in steps]
    if "adaptive" in samplers:
        settings += [{"sampler": "adaptive", "setting": adaptive_label(r, a, end_log_snr), "sampler_steps": None,
                      "qgfd_tol": None, "exit_tol": None, "rtol": r, "atol": a, "end_log_snr": end_log_snr}
                     for r in rtol for a in atol]
    return settings


def writer_lock(shard: Shard, folder) -> contextlib.AbstractContextManager:
    """The results folder's lock in the main process (which alone writes it); nothing in the others."""
    return folder_lock(folder) if shard.is_main else contextlib.nullcontext()


def check_sweep(sweep: SweepSettings, check: Callable[[dict[str, Any]], None]) -> None:
    """Every setting of the sweep through `check` (the model's own argument checks), so that a bad one is refused
    before any results folder, reference statistics or progress bar."""
    for setting in sweep_settings(list(sweep.samplers), list(sweep.steps), list(sweep.qgfd_tol), list(sweep.exits),
                                  sweep.rtol, sweep.atol, end_log_snr=sweep.end_log_snr):
        check(setting)


def add_savings(row: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """What early stopping saved against the fixed setting of the same sampler and steps (when that row exists)."""
    if row["setting"] == "fixed" or row["sampler_steps"] is None:
        return
    fixed = next((r for r in rows if r["setting"] == "fixed" and r["sampler_steps"] == row["sampler_steps"]
                  and r.get("sampler") == row.get("sampler")), None)
    if fixed is None:
        return
    row["saved_network_evaluations"] = fixed["network_evaluations"] - row["network_evaluations"]
    row["saved_network_evaluations_pct"] = 100 * (1 - row["network_evaluations"] / fixed["network_evaluations"])
    if fixed.get("qgfd_iterations") and row.get("qgfd_iterations") is not None:
        row["saved_qgfd_iterations_pct"] = 100 * (1 - row["qgfd_iterations"] / fixed["qgfd_iterations"])
    row["saved_time_pct"] = 100 * (1 - row["seconds"] / fixed["seconds"]) if fixed["seconds"] else None


def run_sweep(model, sweep: SweepSettings, results: Optional[SweepResults], draw: Callable, score: Callable,
              summary_keys: Iterable[str], shard: Shard = Shard(), keep: Optional[Callable] = None) -> None:
    """Every setting not yet in `results`: sample (with the QGFD overrides of the setting), score, append.
    draw(setting, advance, batches) samples this process's batches; under several processes the main one
    (which alone holds `results`) says which settings are left, gathers each setting's samples and scores them.
    keep(result, stem), when given, writes what was scored under results.folder / samples / stem.* and returns
    the file's name for the row, so a sweep's samples can be looked at, or scored again, without the checkpoint."""
    settings = sweep_settings(list(sweep.samplers), list(sweep.steps), list(sweep.qgfd_tol), list(sweep.exits),
                              sweep.rtol, sweep.atol, end_log_snr=sweep.end_log_snr)
    keys = [{**setting, "num_samples": sweep.num_samples, "seed": sweep.seed} for setting in settings]
    pending = shard.broadcast([i for i, key in enumerate(keys) if not results.has(key)] if shard.is_main else None)
    for i in pending:
        setting, key = settings[i], keys[i]
        changes = {"tol": setting["qgfd_tol"]} if setting["qgfd_tol"] else {}
        if setting["qgfd_tol"] and sweep.qgfd_max_iterations:
            changes["iterations"] = sweep.qgfd_max_iterations
        steps = f" steps={setting['sampler_steps']}" if setting["sampler_steps"] else ""
        started = time.perf_counter()
        with override_qgfd(model, **changes), progress_bar(shard) as bar:
            task = bar.add_task(f"{setting['sampler']} {setting['setting']}{steps}",
                                total=shard.share(sweep.num_samples, sweep.batch_size))
            result = draw(setting, lambda n: bar.advance(task, n), shard.batches(sweep.num_samples, sweep.batch_size))
        result = shard.gather(result, started, sweep.batch_size)
        if not shard.is_main:
            continue
        row = {**key, "network_evaluations": result.network_evaluations,
               "evaluations_min": result.evaluations_min, "evaluations_max": result.evaluations_max,
               "rejected_steps": result.rejected_steps, "qgfd_iterations": result.qgfd_iterations,
               "seconds": result.seconds, "checkpoint": sweep.checkpoint}
        row.update(score(result))
        if keep is not None:
            (results.folder / "samples").mkdir(exist_ok=True)
            row["samples_file"] = str(Path("samples") / keep(result, results.folder / "samples" / sample_stem(row)))
        add_savings(row, results.rows)
        results.append(row)
        print(summary(row, summary_keys))


def sample_stem(row: dict[str, Any]) -> str:
    """A setting's file name without suffix: `posterior-jump-fixed-100`, `posterior-jump-exit-tol=0.05-20`."""
    parts = [row.get("sampler"), row.get("setting"), row.get("sampler_steps")]
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", "-".join(str(p) for p in parts if p is not None))


def summary(row: dict[str, Any], keys: Iterable[str]) -> str:
    parts = []
    if "setting" in row:
        parts.append(f"{row['sampler']} {row['setting']}" + (f" steps={row['sampler_steps']}" if row["sampler_steps"] else ""))
    if "network_evaluations" in row:
        parts.append(f"NFE={row['network_evaluations']:.1f}")
        if row.get("evaluations_min") != row.get("evaluations_max"):
            parts.append(f"({row['evaluations_min']:g}-{row['evaluations_max']:g})")
        if row.get("rejected_steps"):
            parts.append(f"rejected={row['rejected_steps']:.1f}")
    parts += [f"{k}={row[k]:.4f}" for k in keys if isinstance(row.get(k), float)]
    if "seconds" in row:
        parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def launch_sweep(settings: Any, kind: str, worker: Callable, inputs: Optional[dict[str, Optional[str]]] = None) -> int:
    """A checkpoint's sweep of any kind, started: the results folder named (default eval-<kind>-<checkpoint
    name>-<content hash>), outputs and `inputs` checked, the checkpoint's kind checked before several processes
    start, then `worker(shard, (settings, digest))` on every process."""
    sweep = settings.sweep
    digest = file_digest(sweep.checkpoint) if Path(sweep.checkpoint).is_file() else None
    sweep = dataclasses.replace(sweep, out=str(sweep.out or f"eval-{kind}-{Path(sweep.checkpoint).stem}-{(digest or '')[:8]}"))
    check_outputs({"--out": sweep.out}, {"--ckpt": sweep.checkpoint, **(inputs or {})}, folders=("--out",))
    if sweep.processes > 1:  # a bad checkpoint is refused here, before any process starts
        check_file(sweep.checkpoint, kind)
    job = (dataclasses.replace(settings, sweep=sweep), digest)
    return launch(worker, job, sweep.devices, sweep.num_nodes, sweep.device, sweep.num_samples, sweep.batch_size)


def chain_sweep(shard: Shard, model, sweep: SweepSettings,
                prepare: Callable[[], tuple[SweepResults, Callable, Callable]], metrics: list[str], noun: str) -> Optional[int]:
    """One process's part of a discrete-chain sweep (molecules, graphs): every process samples its share at each
    step count and early-exit share; the main process scores and keeps the samples (prepare() gives its results,
    scoring and keeping) and writes."""
    check_sweep(sweep, lambda s: model.check_sampling(sweep.num_samples, s["sampler_steps"], s["exit_tol"]))
    with writer_lock(shard, sweep.out):  # one run per results folder (the main process holds it)
        results, score, keep = prepare() if shard.is_main else (None, None, None)

        def draw(setting, advance, batches):
            return model.sample(sweep.num_samples, steps=setting["sampler_steps"], seed=sweep.seed,
                                batch_size=sweep.batch_size, exit_share=setting["exit_tol"], progress=advance,
                                batches=batches)

        run_sweep(model, sweep, results, draw, score, metrics, shard, keep)
        if not shard.is_main:
            return None
        plot = results.plot(f"{Path(sweep.checkpoint).name}: {sweep.num_samples} {noun}")
        print(f"wrote {Path(sweep.out) / 'results.json'}, {Path(sweep.out) / 'results.csv'}" + (f", {plot}" if plot else ""))
        return 0
