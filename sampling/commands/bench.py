"""qgfd-bench: speed and memory of QGFD against plain attention, measured side by side in one run.

    qgfd-bench                         # operator suite, writes bench-operator.json
    qgfd-bench --suite operator --sizes 256,1024 --out my.json
    qgfd-bench --suite unet            # training step of the CIFAR-10 U-Net, QGFD against vanilla
    qgfd-bench --suite molecules       # graph denoiser step and sampler throughput, QGFD against alpha 0
    qgfd-bench --suite structure       # every structure study arm's training step against vanilla's (MOSES size)
    qgfd-bench --suite structure --study configs/studies/qm9-structure.yaml   # that study's arms, on its data
    qgfd-bench --suite sampler         # the workbench's samplers against diffusers' loop on the same U-Net
    qgfd-bench --suite gpu             # the published-scale configs on one GPU, about 10 minutes (--tiny: CPU)

Every figure is a median over repeats after one warm-up; ratios compare runs made in the same process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from qgfd_gen.errors import UsageError, command
from qgfd_gen.io import check_outputs, write_json
from qgfd_gen.memory import MemoryTracker
from qgfd_gen.operator import qgfd_attention, qgfd_reference
from qgfd_gen.transitions import AdjacencyTransition, DenseTransition, GridTransition, KNNTransition, Transition

from .bench_gpu import GPU_CONFIGS, TOTAL_TRAIN_SECONDS, gpu_suite, print_gpu_table
from .bench_gpu_inputs import INPUTS
from .bench_molecules import molecule_ratios, molecule_suite, print_molecule_table
from .bench_sampler import print_sampler_table, sampler_ratios, sampler_suite
from .bench_structure import print_structure_table, structure_ratios, structure_suite, study_suite
from .bench_unet import print_unet_table, unet_ratios, unet_suite
from .options import int_list, number_in, positive_float, positive_int
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


def print_ratios(ratios: dict[str, float]) -> None:
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")


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


def mode_list(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(MODES)}")
    return modes


def config_list(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names or any(c not in GPU_CONFIGS for c in names):
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(GPU_CONFIGS)}")
    return names


alpha_value = number_in(0, 1, include_high=False, what="QGFD's alpha")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgfd-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=["operator", "unet", "molecules", "structure", "sampler", "gpu"], default="operator")
    parser.add_argument("--out", default=None, help="JSON file (default bench-<suite>.json)")
    parser.add_argument("--sizes", type=int_list, default=[256, 1024, 4096])
    parser.add_argument("--modes", type=mode_list, default=list(MODES))
    parser.add_argument("--dim", type=positive_int, default=64)
    parser.add_argument("--heads", type=positive_int, default=4)
    parser.add_argument("--batch", type=positive_int, default=None, help="batch size (operator: 2, unet: 4)")
    parser.add_argument("--iterations", type=positive_int, default=6, help="QGFD diffusion iterations")
    parser.add_argument("--alpha", type=alpha_value, default=0.5)
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--num-molecules", type=positive_int, default=256, help="molecules suite: molecules sampled")
    parser.add_argument("--sample-steps", type=positive_int, default=50, help="molecules / sampler suites: sampler steps")
    parser.add_argument("--num-images", type=positive_int, default=None,
                        help="sampler suite: images per run (64); gpu suite: CIFAR-10 images sampled (1000)")
    parser.add_argument("--tiny", action="store_true", help="gpu suite: the same code on the CPU at tiny sizes")
    parser.add_argument("--train-steps", type=positive_int, default=None, help="gpu suite: steps per part (200; tiny 3)")
    parser.add_argument("--part-budget", type=positive_float, default=None,
                        help="gpu suite: seconds a part may take before it is cut short (training: 40, or less so that all configs fit 7 minutes; tiny 120)")
    parser.add_argument("--configs", type=config_list, default=list(GPU_CONFIGS),
                        help=f"gpu suite: configs to check (default {','.join(GPU_CONFIGS)})")
    parser.add_argument("--reference", default=None,
                        help="gpu suite: CIFAR-10 reference images (folder, .npz) or statistics, for FID / KID")
    parser.add_argument("--data-dir", default=None,
                        help="gpu suite: where the configs' data sets are (default: each config's data_dir); a set "
                             "that is not there is replaced by random inputs, never downloaded")
    parser.add_argument("--ckpt", default=None, help="sampler suite: an image checkpoint (default: digits U-Net)")
    parser.add_argument("--study", default=None,
                        help="structure suite: a graph study file; time its arms on its base config's data")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    return parser


def run_gpu_suite(args: argparse.Namespace, meta: dict, say: Callable[[str], None]) -> tuple[list[dict], list[dict]]:
    """The gpu suite's rows, and those of parts that failed or gave non-finite losses."""
    device = "cpu" if args.tiny else "cuda"
    meta.update(device=torch.cuda.get_device_name() if device == "cuda" else "cpu", tiny=args.tiny, inputs=INPUTS)
    rows, meta["ratios"] = gpu_suite(tuple(args.configs), args.train_steps or (3 if args.tiny else 200),
                                     args.part_budget or (120.0 if args.tiny else min(40.0, TOTAL_TRAIN_SECONDS / (2 * len(args.configs)))),
                                     args.num_images or (8 if args.tiny else 1000), 2 if args.tiny else 50,
                                     args.part_budget or (120.0 if args.tiny else 90.0), args.reference, device,
                                     args.tiny, say, args.data_dir)
    print_gpu_table(rows, meta["ratios"])
    return rows, [r for r in rows if "failed" in r or (r["part"] == "train" and not r["losses_finite"])]


@command
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    check_outputs({"--out": args.out or f"bench-{args.suite}.json"}, {"--reference": args.reference, "--study": args.study})
    if args.study and args.suite != "structure":
        raise UsageError(f"--study is the structure suite's option (--suite structure --study {args.study}), not "
                         f"the {args.suite} suite's")
    if args.suite == "gpu" and not args.tiny and not torch.cuda.is_available():
        raise UsageError("--suite gpu needs a CUDA device and this machine has none; --tiny runs the same code on the "
                         "CPU at tiny sizes")
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir!r} is not a folder; give the folder holding the data sets (or "
                         "leave it out: each config's data_dir)")
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = {"suite": args.suite, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": "cpu", "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    say = lambda text: print(f"[qgfd-bench] {text}", file=sys.stderr, flush=True)  # noqa: E731
    if args.suite == "operator":
        rows = operator_suite(args.sizes, args.modes, args.dim, args.heads, args.batch or 2, args.iterations, args.alpha,
                              args.repeats, say)
        print_operator_table(rows)
        meta["ratios"] = operator_ratios(rows)
        print_ratios(meta["ratios"])
    elif args.suite == "unet":
        rows = unet_suite(batch=args.batch or 4, repeats=min(args.repeats, 3), progress=say)
        print_unet_table(rows)
        meta["ratios"] = unet_ratios(rows)
        print_ratios(meta["ratios"])
    elif args.suite == "gpu":
        rows, failed = run_gpu_suite(args, meta, say)
    elif args.suite == "sampler":
        from models.training.loading import load_model

        model = load_model(args.ckpt, "images") if args.ckpt else None
        rows = sampler_suite(args.num_images or 64, args.sample_steps, args.repeats, say, model)
        print_sampler_table(rows)
        meta["ratios"] = sampler_ratios(rows)
    elif args.suite == "structure":
        rows = (study_suite(args.study, args.repeats, say) if args.study else
                structure_suite(batch=args.batch or 64, repeats=args.repeats, progress=say))
        print_structure_table(rows)
        meta["ratios"] = structure_ratios(rows)
    else:
        rows = molecule_suite(["qm9", "zinc"], batch=args.batch or 256, num=args.num_molecules,
                              steps=args.sample_steps, repeats=args.repeats, progress=say)
        print_molecule_table(rows)
        meta["ratios"] = molecule_ratios(rows)
    out = write_json(args.out or f"bench-{args.suite}.json", {"meta": meta, "rows": rows})
    print(f"wrote {out}")
    if args.suite == "gpu" and failed:
        print(f"error: {len(failed)} part(s) failed or gave non-finite losses: "
              + ", ".join(f"{r['config']} {r.get('arm', '')}".strip() for r in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
