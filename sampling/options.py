"""Command-line value types and the progress bar shared by the sampling and evaluation commands."""

from __future__ import annotations

import argparse
import math

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=False)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive integer")
    return value


def _number_list(text: str, kind: type, example: str) -> list:
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: need comma-separated {kind.__name__}s, e.g. {example}") from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: need positive numbers")
    return values


def int_list(text: str) -> list[int]:
    return _number_list(text, int, "10,20,50")


def float_list(text: str) -> list[float]:
    return _number_list(text, float, "1e-3,1e-4")
