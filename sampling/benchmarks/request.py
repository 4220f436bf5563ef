"""What `qgfd-bench` was asked, as a typed request, and the one function that runs the suite and writes its JSON."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from qgfd_gen.errors import UsageError
from qgfd_gen.io import check_outputs, write_json


@dataclass
class BenchRequest:
    """One `qgfd-bench` call.

    Attributes:
        suite: ``operator``, ``unet``, ``molecules``, ``structure``, ``sampler``, ``gpu``, or a calibration:
            ``moses-calibration``, ``prdc-calibration`` (sampling.benchmarks.calibration).
        out: the JSON file; None: ``bench-<suite>.json``.
        repeats: timed repeats after the warm-up.
        threads: torch threads; None: torch's choice.
        options: the suite's own options by name (``sizes``, ``study``, ``tiny``, ...); a missing one takes the
            suite's default.
    """

    suite: str
    out: Optional[str] = None
    repeats: int = 5
    threads: Optional[int] = None
    options: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.options.get(name)
        return default if value is None else value


def print_ratios(ratios: dict[str, float]) -> None:
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")


def run_gpu_suite(request: BenchRequest, meta: dict, say: Callable[[str], None]) -> tuple[list[dict], list[dict]]:
    """The gpu suite's rows, and those of parts that failed or gave non-finite losses; the JSON is written after
    every part (so a run stopped by a device's time limit leaves what finished), then once more at the end."""
    import torch

    from .gpu import GPU_CONFIGS, TOTAL_TRAIN_SECONDS, gpu_suite, print_gpu_table
    from .gpu_inputs import INPUTS

    tiny, configs = bool(request.get("tiny", False)), tuple(request.get("configs", GPU_CONFIGS))
    budget = request.get("part_budget")
    device = "cpu" if tiny else "cuda"
    meta.update(device=torch.cuda.get_device_name() if device == "cuda" else "cpu", tiny=tiny, inputs=INPUTS)
    rows, meta["ratios"] = gpu_suite(configs, request.get("train_steps", 3 if tiny else 200),
                                     budget or (120.0 if tiny else min(40.0, TOTAL_TRAIN_SECONDS / (2 * len(configs)))),
                                     request.get("num_images", 8 if tiny else 1000), 2 if tiny else 50,
                                     budget or (120.0 if tiny else 90.0), request.get("reference"), device,
                                     tiny, say, request.get("data_dir"), request.get("samples_npz"),
                                     lambda rows: write_json(check_request(request), {"meta": meta, "rows": rows,
                                                                                     "partial": True}))
    print_gpu_table(rows, meta["ratios"])
    return rows, [r for r in rows if "failed" in r or (r["part"] == "train" and not r["losses_finite"])]


def check_request(request: BenchRequest) -> str:
    """Everything the request names, checked before any work; returns the output path."""
    import torch

    out = request.out or f"bench-{request.suite}.json"
    check_outputs({"--out": out, "--samples-npz": request.get("samples_npz")},
                  {"--reference": request.get("reference"), "--study": request.get("study")})
    if request.suite == "gpu" and not request.get("tiny", False) and not torch.cuda.is_available():
        raise UsageError("qgfd-bench gpu needs a CUDA device and this machine has none; --tiny runs the same code on "
                         "the CPU at tiny sizes")
    data_dir = request.get("data_dir")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir {data_dir!r} is not a folder; give the folder holding the data sets (or "
                         "leave it out: each config's data_dir)")
    return out


def run_suite(request: BenchRequest, meta: dict, say: Callable[[str], None]) -> tuple[list[dict], list[dict]]:
    """The suite's rows (and, for the gpu suite, the parts that failed); ratios go into `meta`."""
    get, repeats = request.get, request.repeats
    if request.suite == "operator":
        from .operator import MODES, operator_ratios, operator_suite, print_operator_table

        rows = operator_suite(get("sizes", [256, 1024, 4096]), get("modes", list(MODES)), get("dim", 64),
                              get("heads", 4), get("batch", 2), get("iterations", 6), get("alpha", 0.5), repeats, say)
        print_operator_table(rows)
        meta["ratios"] = operator_ratios(rows)
        print_ratios(meta["ratios"])
    elif request.suite == "unet":
        from .unet import print_unet_table, unet_ratios, unet_suite

        rows = unet_suite(batch=get("batch", 4), repeats=min(repeats, 3), progress=say)
        print_unet_table(rows)
        meta["ratios"] = unet_ratios(rows)
        print_ratios(meta["ratios"])
    elif request.suite == "gpu":
        return run_gpu_suite(request, meta, say)
    elif request.suite == "predict":
        from .predict import BUDGETS, prediction_suite, print_prediction_table

        rows = prediction_suite(tuple(get("configs", list(BUDGETS))), get("probe_batch", 2), say)
        print_prediction_table(rows)
    elif request.suite == "moses-calibration":
        from .calibration import moses_calibration, print_calibration_table

        rows = moses_calibration(get("data_dir", "../shared/data/moses"), get("count", 30000), get("seed", 0),
                                 not get("no_fcd", False), get("fcd_reference", 10000), say)
        print_calibration_table(rows, ("metric", "ours", "moses_train", "difference"))
    elif request.suite == "prdc-calibration":
        from .calibration import prdc_calibration, print_calibration_table

        rows = prdc_calibration(get("images", "../shared/data/cifar10-train-jpg.zip"), get("count", 2500),
                                tuple(get("noise", [0.05, 0.1, 0.2])), get("seed", 0), say=say)
        print_calibration_table(rows, ("noise_sigma", "fid", "precision", "recall", "density", "coverage"))
    elif request.suite == "sampler":
        from models.training.loading import load_model

        from .sampler import print_sampler_table, sampler_ratios, sampler_suite

        model = load_model(get("ckpt"), "images") if get("ckpt") else None
        rows = sampler_suite(get("num_images", 64), get("sample_steps", 50), repeats, say, model)
        print_sampler_table(rows)
        meta["ratios"] = sampler_ratios(rows)
    elif request.suite == "structure":
        from .structure import print_structure_table, structure_ratios, structure_suite, study_suite

        rows = (study_suite(get("study"), repeats, say) if get("study") else
                structure_suite(batch=get("batch", 64), repeats=repeats, progress=say))
        print_structure_table(rows)
        meta["ratios"] = structure_ratios(rows)
    else:
        from .molecules import molecule_ratios, molecule_suite, print_molecule_table

        rows = molecule_suite(["qm9", "zinc"], batch=get("batch", 256), num=get("num_molecules", 256),
                              steps=get("sample_steps", 50), repeats=repeats, progress=say)
        print_molecule_table(rows)
        meta["ratios"] = molecule_ratios(rows)
    return rows, []


def run_bench(request: BenchRequest) -> int:
    """Runs one suite and writes its JSON (meta and rows).

    Returns:
        0, or 1 when a part of the gpu suite failed or gave non-finite losses (named on stderr).

    Raises:
        UsageError: a bad output path, reference, study or data folder, or the gpu suite without a GPU.
    """
    import torch

    out = check_request(request)
    if request.threads:
        torch.set_num_threads(request.threads)
    meta = {"suite": request.suite, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": "cpu", "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    say = lambda text: print(f"[qgfd-bench] {text}", file=sys.stderr, flush=True)  # noqa: E731
    rows, failed = run_suite(request, meta, say)
    print(f"wrote {write_json(out, {'meta': meta, 'rows': rows})}")
    if failed:
        print(f"error: {len(failed)} part(s) failed or gave non-finite losses: "
              + ", ".join(f"{r['config']} {r.get('arm', '')}".strip() for r in failed), file=sys.stderr)
        return 1
    return 0
