"""An evaluation's options by name, as a mapping: what a study's `evaluate:` block holds, turned into the typed
settings the evaluation engines take (`sampling.settings`). The names and defaults are `qgfd-eval`'s options with
underscores (`num_samples`, `steps`, `no_fcd`); `tests/sampling/test_evaluation_options.py` checks that an
empty mapping gives exactly the settings of `qgfd-eval KIND --ckpt CKPT --out OUT` with no other option.

Example:
    >>> settings = evaluation_settings("graphs", "final.ckpt", "eval", {"steps": [100]})
    >>> settings.sweep.num_samples, settings.sweep.steps, settings.kernel
    (40, (100,), 'tv')
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Union

from models.measures.graph_statistics import KERNELS as GRAPH_KERNELS
from models.processes.adaptive_sampler import AdaptiveSettings
from models.processes.gaussian_diffusion import SAMPLERS as IMAGE_SAMPLERS
from models.processes.graph_diffusion import CHAIN_SAMPLER
from qgfd_gen.errors import UsageError

from .evaluate_images import IMAGE_METRICS
from .settings import GraphEvaluation, ImageEvaluation, MoleculeEvaluation, SweepSettings

KINDS = ("images", "molecules", "graphs")
DEFAULT_STEPS = {"images": (10, 20, 50, 100), "molecules": (50, 100, 500), "graphs": (50, 100, 500)}
DEFAULT_NUM_SAMPLES = {"images": 1000, "molecules": 1000, "graphs": 40}  # the graph benchmarks' test sets are 40

Evaluation = Union[ImageEvaluation, MoleculeEvaluation, GraphEvaluation]


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"evaluate.{key}={value!r}; need a positive integer")
    return value


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"evaluate.{key}={value!r}; need an integer")
    return value


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"evaluate.{key}={value!r}; need a finite number")
    return float(value)


def _items(key: str, value: Any) -> list[Any]:
    """A list, or one value, or a comma list in a string (as on qgfd-eval's command line)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise UsageError(f"evaluate.{key}={value!r}; need at least one value")
    return list(items)


def _ints(key: str, value: Any) -> tuple[int, ...]:
    return tuple(_positive_int(key, int(v) if isinstance(v, str) and v.isdigit() else v) for v in _items(key, value))


def _floats(key: str, value: Any) -> tuple[float, ...]:
    return tuple(_number(key, float(v) if isinstance(v, str) else v) for v in _items(key, value))


def _choices(options: tuple[str, ...]) -> Callable[[str, Any], tuple[str, ...]]:
    def convert(key: str, value: Any) -> tuple[str, ...]:
        chosen = [str(v).strip().lower() for v in _items(key, value)]
        unknown = [v for v in chosen if v not in options]
        if unknown:
            raise UsageError(f"evaluate.{key}={value!r}; choose from {', '.join(options)}")
        return tuple(dict.fromkeys(chosen))
    return convert


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"evaluate.{key}={value!r}; need a non-empty string")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"evaluate.{key}={value!r}; need true or false")
    return value


def _unit(key: str, value: Any) -> float:
    number = _number(key, value)
    if not 0 <= number <= 1:
        raise UsageError(f"evaluate.{key}={value!r}; need a number from 0 to 1")
    return number


SWEEP_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "num_samples": _positive_int, "steps": _ints, "qgfd_tol": _floats, "qgfd_max_iterations": _positive_int,
    "seed": _integer, "batch_size": _positive_int, "data_dir": _text, "device": _text, "devices": _positive_int,
    "num_nodes": _positive_int,
}
KIND_KEYS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    "images": {"metrics": _choices(IMAGE_METRICS), "sampler": _choices(IMAGE_SAMPLERS), "rtol": _floats,
               "atol": _floats, "end_log_snr": _number, "exit_levels": _floats, "exit_tol": _floats, "eta": _unit,
               "inception_weights": _text, "feature_extractor": _text, "nll_images": _positive_int,
               "nll_timesteps": _positive_int, "reference_images": _positive_int},
    "molecules": {"exit_share": _floats, "exit_tol": _floats, "no_fcd": _flag, "no_nspdk": _flag, "moses": _flag},
    "graphs": {"exit_share": _floats, "exit_tol": _floats, "kernel": _choices(GRAPH_KERNELS)},
}


def evaluation_settings(kind: str, checkpoint: str, out: str, options: Mapping[str, Any]) -> Evaluation:
    """The settings of `qgfd-eval KIND --ckpt checkpoint --out out` with `options` (option names with
    underscores).

    Args:
        kind: ``images``, ``molecules`` or ``graphs``.
        checkpoint: the checkpoint to sample.
        out: the results folder.
        options: option name -> value; lists or comma strings where the option takes several values.

    Returns:
        An ``ImageEvaluation``, ``MoleculeEvaluation`` or ``GraphEvaluation``.

    Raises:
        UsageError: an unknown kind or option, or a value of the wrong type or range, named.
    """
    if kind not in KINDS:
        raise UsageError(f"kind={kind!r}; choose one of {', '.join(KINDS)}")
    known = {**SWEEP_KEYS, **KIND_KEYS[kind]}
    unknown = sorted(str(key) for key in options if key not in known)
    if unknown:
        raise UsageError(f"the evaluate option(s) {', '.join(unknown)} are not qgfd-eval {kind} options; valid: "
                         f"{', '.join(sorted(known))}")
    given = {key: known[key](key, value) for key, value in options.items() if value is not None}
    exits = given.get("exit_levels", given.get("exit_share", given.get("exit_tol", ())))
    samplers = given.get("sampler", ("ddim",)) if kind == "images" else (CHAIN_SAMPLER,)
    sweep = SweepSettings(
        checkpoint=str(checkpoint), out=out, samplers=tuple(samplers), steps=given.get("steps", DEFAULT_STEPS[kind]),
        num_samples=given.get("num_samples", DEFAULT_NUM_SAMPLES[kind]), seed=given.get("seed", 0),
        batch_size=given.get("batch_size", 256), qgfd_tol=given.get("qgfd_tol", ()),
        qgfd_max_iterations=given.get("qgfd_max_iterations"), exits=tuple(exits),
        rtol=given.get("rtol", (AdaptiveSettings.rtol,)) if kind == "images" else (),
        atol=given.get("atol", (AdaptiveSettings.atol,)) if kind == "images" else (),
        end_log_snr=given.get("end_log_snr"), data_dir=given.get("data_dir"), device=given.get("device", "cpu"),
        devices=given.get("devices", 1), num_nodes=given.get("num_nodes", 1))
    if kind == "images":
        return ImageEvaluation(sweep, metrics=given.get("metrics", IMAGE_METRICS), eta=given.get("eta", 0.0),
                               inception_weights=given.get("inception_weights"),
                               feature_extractor=given.get("feature_extractor"),
                               nll_images=given.get("nll_images", 256), nll_timesteps=given.get("nll_timesteps"),
                               reference_images=given.get("reference_images"))
    if kind == "molecules":
        return MoleculeEvaluation(sweep, fcd=not given.get("no_fcd", False), nspdk=not given.get("no_nspdk", False),
                                  moses=given.get("moses", False))
    return GraphEvaluation(sweep, kernel=given.get("kernel", ("tv",))[0])
