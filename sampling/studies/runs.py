"""One run of a study: checked before anything trains, trained through the same LightningCLI path as
`lightning fit` (resuming from its last checkpoint), evaluated by the evaluation engines, and summed up as the
study's row for it."""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

from qgfd_gen.errors import UsageError
from qgfd_gen.io import atomic_path, write_json, write_text
from qgfd_gen.provenance import code_version
from sampling.evaluation_options import Evaluation, evaluation_settings

from .curves import loss_curve
from .plan import Run, StudyPlan
from .report import QUALITY

KNOWN_METRICS = tuple(QUALITY)  # every metric the report knows the better direction of
PROVENANCE = ("fid_network", "fid_label", "reference_images")  # which network scored the images, on how many


def run_evaluation_settings(plan: StudyPlan, checkpoint: Path, out: Path) -> Evaluation:
    """The evaluation of one run, from the study's `evaluate` mapping (qgfd-eval's option names)."""
    return evaluation_settings(plan.kind, str(checkpoint), str(out), plan.evaluate)


def check_evaluation(plan: StudyPlan, out: Path) -> Optional[Evaluation]:
    """Before any training: the evaluation options are valid and the files they name exist (None for a study
    that only trains)."""
    if not plan.evaluates:
        return None
    settings = run_evaluation_settings(plan, out / "final.ckpt", out / "eval")
    named = {"feature_extractor": getattr(settings, "feature_extractor", None),
             "inception_weights": getattr(settings, "inception_weights", None), "data_dir": settings.sweep.data_dir}
    for name, path in named.items():
        if path and not Path(path).exists():
            hint = " (make it: qgfd-features --out FILE)" if name == "feature_extractor" else ""
            raise UsageError(f"evaluate.{name}={path!r} does not exist{hint}")
    return settings


def check_arms(plan: StudyPlan, evaluation: Optional[Evaluation] = None) -> None:
    """Before any training: every arm's model builds, so a value its class refuses (say qgfd.alpha 1.5)
    stops the study at once, naming the arm, instead of after the arms before it have trained; and the
    evaluation's sampler settings suit it (say steps beyond its training timesteps)."""
    for arm in plan.arms:
        try:
            built = plan.build_model(arm)
            if evaluation is None:
                continue
            sweep = evaluation.sweep
            for steps in sweep.steps:
                if plan.kind == "images":
                    for sampler in sweep.samplers:
                        built.check_sampling(sweep.num_samples, sampler, None if sampler == "adaptive" else steps)
                else:
                    built.check_sampling(sweep.num_samples, steps)
        except (ValueError, TypeError) as error:
            raise UsageError(f"arm {arm!r}: {error}") from None


def train(run: Run) -> dict[str, Any]:
    """Train one run (resuming from its last checkpoint), save final.ckpt, and return what it cost and how
    stably it trained. A run that diverges (training stopped by non-finite losses) is recorded as diverged, with
    no final.ckpt, not raised: divergence is a result of a stability study."""
    record_path, final = run.folder / "training.json", run.folder / "final.ckpt"
    if record_path.exists():
        try:
            record = json.loads(record_path.read_text())
            record.get("stopped_by")
        except (ValueError, AttributeError):
            raise UsageError(f"{str(record_path)!r} is not a training record this workbench wrote (damaged or "
                             f"edited); delete it, and the run is trained again from its last checkpoint") from None
        if final.exists() or record.get("stopped_by") == "TrainingDiverged":
            return record
    from models.training.cli import run_cli
    from qgfd_gen.errors import TrainingDiverged

    config_path = write_text(run.folder / "config.yaml", yaml.safe_dump(run.config, sort_keys=False))
    last = run.folder / "checkpoints" / "last.ckpt"
    resumed = last.exists()
    attempts = record_attempt(run.folder / "attempts.json", resumed)
    argv = ["fit", "-c", str(config_path)] + (["--ckpt_path", str(last)] if resumed else [])
    start = time.perf_counter()
    with warnings.catch_warnings():  # LightningCLI warns when args are given while sys.argv holds the study's own
        warnings.filterwarnings("ignore", "LightningCLI's args parameter")
        try:
            cli = run_cli(argv)
        except TrainingDiverged as stopped:
            return diverged_record(run, attempts, resumed, time.perf_counter() - start, str(stopped))
    trainer, model = cli.trainer, cli.model
    if trainer.interrupted or (run.config["trainer"]["max_steps"] > 0 and trainer.global_step < run.config["trainer"]["max_steps"]):
        raise KeyboardInterrupt(f"training of {run.arm} seed {run.seed} stopped at step {trainer.global_step}")
    seconds = time.perf_counter() - start
    validation = trainer.validate(model, datamodule=cli.datamodule, verbose=False)[0]  # at the final weights
    diagnostics = next(c for c in trainer.callbacks if type(c).__name__ == "TrainingDiagnostics")
    with atomic_path(final) as tmp:
        trainer.save_checkpoint(tmp, weights_only=False)
    record = {
        "parameters": sum(p.numel() for p in model.network.parameters() if p.requires_grad),
        "steps": trainer.global_step, "train_seconds": seconds, "resumed": resumed,
        "seconds_per_step": diagnostics.seconds_per_step(), "step_memory_mb": diagnostics.step_memory_mb,
        "train_loss": final_training_loss(run.folder),
        "val_loss": _float(validation.get("val/loss")),
        "nonfinite_losses": diagnostics.nonfinite_losses, "skipped_steps": diagnostics.skipped_steps,
        "torch_threads": torch.get_num_threads(), "code": trained_by(attempts), **stability_summary(run.folder),
        **collapse_summary(run.folder),
    }
    write_json(record_path, record)
    return record


def last_logged(folder: Path, name: str) -> Optional[dict[str, Any]]:
    """A JSON file a callback wrote beside the run's logs, from its last logs version (a resumed run's newest)."""
    found = sorted((folder / "logs").glob(f"version_*/{name}"), key=lambda p: int(p.parent.name.split("_")[1]))
    return json.loads(found[-1].read_text()) if found else None


def stability_summary(folder: Path) -> dict[str, Any]:
    """The run's StabilityMonitor summary (its last logs version), with `diverged`: stopped by non-finite losses,
    or ending with a final loss that is not finite or above the loss at initialisation (Wortsman et al.'s test)."""
    summary = last_logged(folder, "stability.json")
    if summary is None:
        return {}
    initial, final = summary.get("initial_loss"), summary.get("final_loss_last10")
    summary["diverged"] = (summary.get("stopped_by") == "TrainingDiverged" or final is None or initial is None
                           or not math.isfinite(final) or final > initial)
    return summary


def collapse_summary(folder: Path) -> dict[str, Any]:
    """The last layer's collapse measures at initialisation and at the end (models.CollapseMonitor's collapse.json
    of the last logs version), when the run had the monitor; the per-layer probes stay in that file."""
    summary = last_logged(folder, "collapse.json") or {}
    return {key: value for key, value in summary.items() if key != "probes"}


def diverged_record(run: Run, attempts: list[dict[str, Any]], resumed: bool, seconds: float, message: str
                    ) -> dict[str, Any]:
    """The record of a run that training stopped as diverged: no final checkpoint, no validation."""
    summary = stability_summary(run.folder)
    record = {"parameters": None, "steps": summary.get("monitored_steps"), "train_seconds": seconds,
              "resumed": resumed, "seconds_per_step": None, "step_memory_mb": None,
              "train_loss": final_training_loss(run.folder), "val_loss": None, "torch_threads": torch.get_num_threads(),
              "stopped": message, "code": trained_by(attempts), **summary, **collapse_summary(run.folder),
              "diverged": True}
    write_json(run.folder / "training.json", record)
    return record


def trained_by(attempts: list[dict[str, Any]]) -> str:
    """The code of every attempt at a run, once each, in order: a run resumed by newer code names both."""
    return " + ".join(dict.fromkeys(a["code"] for a in attempts))


def record_attempt(path: Path, resumed: bool) -> list[dict[str, Any]]:
    """Appends this training attempt (the code it runs, whether it resumes) to the run's attempts file: a run
    resumed by newer code says it was trained by both."""
    attempts = json.loads(path.read_text()) if path.exists() else []
    attempts.append({"code": code_version(), "resumed": resumed, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    write_json(path, attempts)
    return attempts


def final_training_loss(folder: Path, last: int = 10) -> Optional[float]:
    """The mean of the last `last` logged training losses: one batch's loss is too noisy to compare runs."""
    curve = loss_curve(folder)[-last:]
    return sum(value for _, value in curve) / len(curve) if curve else None


def evaluate(plan: StudyPlan, run: Run) -> dict[str, Any]:
    """The evaluation engine on the run's final checkpoint; the metrics of each evaluated setting (suffixed with
    the sampler steps when the evaluation sweeps more than one). Nothing for a study that only trains or a run
    that diverged (it has no final checkpoint)."""
    if not plan.evaluates or not (run.folder / "final.ckpt").exists():
        return {}
    from sampling.evaluate_graphs import evaluate_graphs
    from sampling.evaluate_images import evaluate_images
    from sampling.evaluate_molecules import evaluate_molecules

    engine = {"images": evaluate_images, "molecules": evaluate_molecules, "graphs": evaluate_graphs}[plan.kind]
    engine(run_evaluation_settings(plan, run.folder / "final.ckpt", run.folder / "eval"))
    rows = json.loads((run.folder / "eval" / "results.json").read_text())["rows"]
    scores: dict[str, Any] = {}
    for row in rows:
        suffix = f"@{row['sampler_steps']}" if len(rows) > 1 else ""
        scores.update({f"{m}{suffix}": row[m] for m in KNOWN_METRICS if m in row})
        scores.update({k: row[k] for k in PROVENANCE if k in row})  # one network and count for every row of a run
    return scores


def train_and_evaluate(plan: StudyPlan, run: Run) -> dict[str, Any]:
    """One run's row: its arm, seed and overrides, what its training cost, and its scores."""
    return {"arm": run.arm, "seed": run.seed, **plan.arms[run.arm], **train(run), **evaluate(plan, run)}


def _float(value: Any) -> Optional[float]:
    return None if value is None else float(value)
