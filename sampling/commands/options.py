"""Command-line value types shared by the commands."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=positive_int, default=1,
                        help="processes per node (DDP): each draws its share of the samples; the result for a seed "
                             "does not depend on how many")
    parser.add_argument("--num-nodes", type=positive_int, default=1, help="nodes (DDP, with --devices)")


def add_end_log_snr_option(parser: argparse.ArgumentParser) -> None:
    """--end-log-snr, as qgfd-sample and qgfd-eval both take it."""
    parser.add_argument("--end-log-snr", type=finite_float, default=None,
                        help="adaptive sampler: return the clean prediction at this log-SNR (2: sigma 0.13, the best FID "
                             "on the digits model, README); default: the cleanest timestep")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive integer")
    return value


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def positive_float(text: str) -> float:
    value = _float_or_nan(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive finite number")
    return value


def finite_float(text: str) -> float:
    value = _float_or_nan(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: need a finite number")
    return value


def _number_list(text: str, kind: type, example: str) -> list:
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: need comma-separated {kind.__name__}s, e.g. {example}") from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: need positive finite numbers")
    return values


def int_list(text: str) -> list[int]:
    return _number_list(text, int, "10,20,50")


def float_list(text: str) -> list[float]:
    return _number_list(text, float, "1e-3,1e-4")


def device(text: str) -> str:
    """A torch device that exists here: cpu, cuda, cuda:1, mps."""
    import torch

    try:
        chosen = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a device; use cpu, cuda, cuda:N or mps") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has no CUDA device; use --device cpu")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r}: there are {torch.cuda.device_count()} CUDA devices here")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available here; use --device cpu")
    if chosen.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r}: use cpu, cuda, cuda:N or mps")
    return text


def number_in(low: float, high: float, include_high: bool = True, what: str = "a number") -> Callable[[str], float]:
    """An argparse type: a number in [low, high] (or [low, high) without include_high)."""
    interval = f"[{low:g}, {high:g}{']' if include_high else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (low <= value <= high if include_high else low <= value < high):
            raise argparse.ArgumentTypeError(f"{text!r}: {what} must be in {interval}")
        return value

    return parse


unit_interval = number_in(0, 1, what="DDIM's eta")
