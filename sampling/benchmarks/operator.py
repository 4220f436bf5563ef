"""The operator suite: QGFD's value form against `F.scaled_dot_product_attention` and against the seed formula
(`qgfd_reference`), per transition and size, forward and forward+backward, with peak memory."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from qgfd_gen.memory import MemoryTracker
from qgfd_gen.operator import qgfd_attention, qgfd_reference
from qgfd_gen.transitions import AdjacencyTransition, DenseTransition, GridTransition, KNNTransition, Transition

from .timing import interleaved_median_ms

REFERENCE_MAX_N = 1024


def measure(functions: dict[str, Callable[..., torch.Tensor]], inputs: list[torch.Tensor], repeats: int) -> dict[str, dict]:
    """Per function: forward and forward+backward time (the functions take turns, see interleaved_median_ms),
    and memory (peak live bytes, largest tensor) of one forward+backward."""

    def forward(fn):
        def run():
            with torch.no_grad():
                fn(*inputs)
        return run

    def forward_backward(fn):
        def run():
            for t in inputs:
                t.grad = None
            fn(*inputs).sum().backward()
        return run

    forward_ms = interleaved_median_ms({name: forward(fn) for name, fn in functions.items()}, repeats)
    forward_backward_ms = interleaved_median_ms({name: forward_backward(fn) for name, fn in functions.items()}, repeats)
    results = {}
    for name, fn in functions.items():
        with MemoryTracker() as tracker:
            forward_backward(fn)()
        results[name] = {"forward_ms": forward_ms[name], "forward_backward_ms": forward_backward_ms[name],
                         "peak_mb": tracker.peak_bytes / 2**20, "largest_tensor_mb": tracker.largest_bytes / 2**20}
    return results


def make_transition(mode: str, n: int, generator: torch.Generator) -> Transition:
    if mode == "grid":
        side = int(round(n**0.5))
        return GridTransition(side, n // side)
    if mode == "knn":
        return KNNTransition(8)
    if mode == "dense":
        return DenseTransition()
    if mode == "adjacency":  # a random sparse graph, 8 out-edges per node
        col = torch.randint(0, n, (n * 8,), generator=generator)
        row = torch.arange(n).repeat_interleave(8)
        return AdjacencyTransition(edge_index=torch.stack([row, col]))
    raise ValueError(f"unknown mode {mode!r}")


def operator_suite(sizes: list[int], modes: list[str], dim: int, heads: int, batch: int, iterations: int,
                   alpha: float, repeats: int, progress: Callable[[str], None]) -> list[dict]:
    rows = []
    generator = torch.Generator().manual_seed(0)
    for n in sizes:
        q, k, v = (torch.randn(batch, heads, n, dim, generator=generator, requires_grad=True) for _ in range(3))
        reps = repeats if n <= 1024 else max(1, repeats // 2)
        for mode in modes:
            if mode == "dense" and n > 1024:
                continue  # N x N by definition; nothing to learn at 4096 but a long wait
            progress(f"N={n} mode={mode}")
            transition = make_transition(mode, n, generator)
            timed = measure({"qgfd": lambda q, k, v: qgfd_attention(q, k, v, transition, alpha=alpha, iterations=iterations),
                             "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v)}, [q, k, v], reps)
            qgfd, sdpa = timed["qgfd"], timed["sdpa"]
            row = {"mode": mode, "N": n, "d": dim, "heads": heads, "batch": batch, "iterations": iterations, "alpha": alpha,
                   "nxn_mb": n * n * 4 / 2**20}
            row.update({f"qgfd_{key}": value for key, value in qgfd.items()})
            row.update({f"sdpa_{key}": value for key, value in sdpa.items()})
            row["ratio_forward_vs_sdpa"] = qgfd["forward_ms"] / sdpa["forward_ms"]
            row["ratio_forward_backward_vs_sdpa"] = qgfd["forward_backward_ms"] / sdpa["forward_backward_ms"]
            if n <= REFERENCE_MAX_N:
                ref = measure({"reference": lambda q, k, v: qgfd_reference(q, k, v, transition, alpha=alpha,
                                                                            iterations=iterations)},
                              [q, k, v], max(1, reps // 2))["reference"]
                row.update({f"reference_{key}": value for key, value in ref.items()})
                row["speedup_forward_vs_reference"] = ref["forward_ms"] / qgfd["forward_ms"]
                row["speedup_forward_backward_vs_reference"] = ref["forward_backward_ms"] / qgfd["forward_backward_ms"]
            rows.append(row)
    return rows


def operator_ratios(rows: list[dict]) -> dict[str, float]:
    """QGFD against SDPA per mode and size: `<mode>_fwd_vs_sdpa_<N>` and `<mode>_fwd_bwd_vs_sdpa_<N>`."""
    ratios = {}
    for r in rows:
        ratios[f"{r['mode']}_fwd_vs_sdpa_{r['N']}"] = r["ratio_forward_vs_sdpa"]
        ratios[f"{r['mode']}_fwd_bwd_vs_sdpa_{r['N']}"] = r["ratio_forward_backward_vs_sdpa"]
    return ratios


def print_operator_table(rows: list[dict]) -> None:
    head = f"{'mode':10}{'N':>6}{'fwd ms':>9}{'sdpa':>8}{'x':>6}{'f+b ms':>9}{'sdpa':>8}{'x':>6}{'ref x':>8}{'peak MB':>9}{'sdpa':>7}{'big/NxN':>9}"
    print(head)
    for r in rows:
        ref = r.get("speedup_forward_vs_reference")
        print(f"{r['mode']:10}{r['N']:>6}{r['qgfd_forward_ms']:>9.2f}{r['sdpa_forward_ms']:>8.2f}{r['ratio_forward_vs_sdpa']:>6.2f}"
              f"{r['qgfd_forward_backward_ms']:>9.2f}{r['sdpa_forward_backward_ms']:>8.2f}{r['ratio_forward_backward_vs_sdpa']:>6.2f}"
              f"{(f'{ref:.1f}' if ref else '-'):>8}{r['qgfd_peak_mb']:>9.1f}{r['sdpa_peak_mb']:>7.1f}"
              f"{r['qgfd_largest_tensor_mb'] / r['nxn_mb']:>9.3f}")


MODES = ("grid", "knn", "adjacency", "dense")
