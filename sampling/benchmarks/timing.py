"""Wall-clock timing for the benchmarks: medians over repeats after one warm-up."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def interleaved_median_ms(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Medians for several functions timed in turn (A, B, A, B, ...) after one warm-up each. On a shared
    machine whose speed drifts by 10-30% between minutes, timing A's repeats and then B's puts the drift into
    the ratio; taking turns puts both under the same conditions."""
    for fn in functions.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}
