"""qgfd-study: does QGFD help, and at what cost? Trains every arm of a study for every seed through the same
LightningCLI path as `lightning fit`, evaluates each run, and writes the evidence.

    qgfd-study run -c configs/studies/qm9-cpu.yaml [--out studies/qm9-cpu] [--threads N] [--jobs N]
    qgfd-study check -c configs/studies/qm9-cpu.yaml     # every arm builds, the evaluation is valid; the runs left
    qgfd-study status -c configs/studies/qm9-cpu.yaml    # the runs done, resumable and left; builds nothing
    qgfd-study report -c configs/studies/qm9-cpu.yaml    # report.md and plots again, from the rows there
    qgfd-study drop -c configs/studies/qm9-cpu.yaml vanilla:2   # forget a run; the next `run` trains it again

OUT/study.json and OUT/study.csv hold one row per arm and seed (the overrides, parameters, time per step, memory
of a training step, final training and validation loss, every metric); OUT/report.md the mean ± std per arm,
each arm's difference from the baseline arm with a 95% paired t interval over seeds, and the plots. Every run
lives in OUT/runs/<arm>/seed<k>/. A rerun skips finished runs and resumes an interrupted one from its last
checkpoint; a folder holding another study is refused. The engine is `sampling.studies`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from qgfd_gen.errors import UsageError, command

from .options import positive_int

MODES = ("run", "check", "status", "report", "drop")
OLD_FLAGS = {"--dry-run": "check", "--report-only": "report", "--drop": "drop"}  # the spellings before subcommands


def run_name(text: str) -> tuple[str, int]:
    arm, colon, seed = text.rpartition(":")
    if not colon or not arm or not seed.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give ARM:SEED, an arm of the study and one of its seeds (vanilla:2)")
    return arm, int(seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgfd-study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True, metavar="{" + ",".join(MODES) + "}")
    helps = {"run": "train and evaluate every run not yet done, then write the rows and report",
             "check": "check the study (every arm builds, the evaluation is valid) and list its runs; train and "
                      "write nothing",
             "status": "list the runs done, resumable and still to do, and the time left; build nothing",
             "report": "rewrite report.md and its plots from the rows already there; train nothing",
             "drop": "forget finished runs (row and folder) so that the next `run` trains them again"}
    for mode in MODES:
        mode_parser = sub.add_parser(mode, help=helps[mode], description=helps[mode])
        mode_parser.add_argument("-c", "--config", required=True, help="a study file (configs/studies/*.yaml)")
        mode_parser.add_argument("--out", default=None, help="study folder (default studies/<study name>)")
        if mode in ("run", "check", "status"):
            mode_parser.add_argument("--jobs", type=positive_int, default=1,
                                     help="runs trained at once, one process each, each run's output in its "
                                          "study.log (default 1); the time left counts ceil(runs / jobs) runs")
        if mode == "run":
            mode_parser.add_argument("--threads", type=positive_int, default=None,
                                     help="torch threads for training and evaluation (default: torch's choice, or "
                                          "the cores / --jobs); each run records the count")
        if mode == "drop":
            mode_parser.add_argument("runs", nargs="+", type=run_name, metavar="ARM:SEED",
                                     help="the runs to forget (say, trained on another machine, so that their step "
                                          "times pair with nothing)")
    return parser


def modern_argv(argv: list[str]) -> list[str]:
    """The old flag spellings (`-c FILE --dry-run`, `--report-only`, `--drop A:S`) as subcommands, with a
    one-line deprecation notice naming the new form."""
    if not argv or argv[0] in MODES or argv[0] in ("-h", "--help"):
        return argv
    flags = [flag for flag in OLD_FLAGS if flag in argv]
    mode = OLD_FLAGS[flags[0]] if len(flags) == 1 else "run"
    if len(flags) > 1:
        raise UsageError(f"{' and '.join(flags)} do not go together; use one of `qgfd-study "
                         f"{'|'.join(OLD_FLAGS[f] for f in flags)} -c FILE`")
    rest, drops, skip = [], [], False
    for index, item in enumerate(argv):
        if skip:
            skip = False
        elif item == "--drop":
            if index + 1 < len(argv):
                drops.append(argv[index + 1])
            skip = True
        elif item not in OLD_FLAGS:
            rest.append(item)
    new = [mode, *rest, *drops]
    print(f"qgfd-study: this spelling is deprecated; use `qgfd-study {' '.join(new)}`", file=sys.stderr)
    return new


@command
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(modern_argv(list(sys.argv[1:] if argv is None else argv)))
    from sampling.studies.request import StudyRequest, run_request

    return run_request(StudyRequest(mode=args.mode, config=args.config, out=args.out, jobs=getattr(args, "jobs", 1),
                                    threads=getattr(args, "threads", None), drop=list(getattr(args, "runs", []))))


if __name__ == "__main__":
    sys.exit(main())
