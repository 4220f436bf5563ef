"""A study's runs several at a time (`qgfd-study --jobs N`), one process a run. Small graph networks use two cores
poorly, so two runs at one thread each finish about 1.45x as many runs an hour as one run at two threads. Each run
is the same as when trained alone (its seed fixes its batches and noise), writes its Lightning output to its own
`study.log`, and hands its row back as a file; this process alone writes the study's rows and report, as each
run finishes. Stopping the study (Ctrl+C, SIGTERM) stops every run it started; each resumes from its last
checkpoint next time. Step times measured side by side time each other's load: time the cost apart
(`qgfd-bench structure --study`, into the study folder's cost.json)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from multiprocessing import get_context
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable, Optional

from qgfd_gen.errors import UsageError

from .plan import Run, StudyPlan

ROW_FILE = "row.json"  # a finished run's row, from its process to the study's; removed once in the table
LOG_FILE = "study.log"


def run_in_process(config: str, out: str, arm: str, seed: int, threads: int) -> None:
    """A worker: train and evaluate one run, its output in the run's own log, its row in ROW_FILE."""
    import torch

    from qgfd_gen.io import write_json

    from .runs import train_and_evaluate
    from .plan import read_study

    plan = read_study(config)
    run = next(r for r in plan.runs(Path(out)) if (r.arm, r.seed) == (arm, seed))
    run.folder.mkdir(parents=True, exist_ok=True)
    log = os.open(run.folder / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)  # the file descriptors, so Lightning's, rich's and C extensions' output all land there
    os.dup2(log, 2)
    torch.set_num_threads(threads)
    write_json(run.folder / ROW_FILE, train_and_evaluate(plan, run))
    sys.stdout.flush()
    sys.stderr.flush()


def _stop_on_sigterm(*_: Any) -> None:
    from qgfd_gen.errors import Terminated

    raise Terminated("SIGTERM")


def run_parallel(plan: StudyPlan, config: str, out: Path, todo: list[Run], jobs: int, threads: int,
                 finished: Callable[[dict[str, Any]], None], announce: Callable[[str], None], first_index: int,
                 total: int) -> None:
    """Runs `todo` with at most `jobs` processes at a time, calling `finished(row)` in this process as each ends.
    A failed run starts no further ones; the runs under way finish, then the failure is raised, naming the
    run and its log."""
    context = get_context("spawn")  # a fresh interpreter a run: no torch or Lightning state shared with this one
    pending, live, failed = list(todo), {}, []
    started, done = time.perf_counter(), 0
    print(f"each run's output goes to its own log: {out / 'runs' / '<arm>' / 'seed<k>' / LOG_FILE}", file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        while pending or live:
            while pending and not failed and len(live) < jobs:
                run = pending.pop(0)
                elapsed = time.perf_counter() - started
                left = (f", about {elapsed / done * (len(todo) - done) / jobs / 60:.0f} min left" if done else "")
                process = context.Process(target=run_in_process, args=(config, str(out), run.arm, run.seed, threads),
                                          name=f"{run.arm}-seed{run.seed}")
                process.start()
                live[process.sentinel] = (process, run)
                announce(f"[{first_index + done + len(live) - 1}/{total}] {run.arm}, seed {run.seed} "
                         f"({elapsed / 60:.1f} min elapsed{left}; {len(live)} running)")
            if not live:
                break
            for sentinel in wait(list(live)):
                process, run = live.pop(sentinel)
                process.join()
                row_file = run.folder / ROW_FILE
                if process.exitcode == 0 and row_file.exists():
                    finished(json.loads(row_file.read_text()))
                    row_file.unlink()
                    done += 1
                    announce(f"finished {run.arm}, seed {run.seed} ({done} of {len(todo)})")
                else:
                    failed.append(f"{run.arm} seed {run.seed} (exit code {process.exitcode}; see "
                                  f"{run.folder / LOG_FILE})")
    except BaseException as error:
        for process, _ in live.values():  # stopped: so are its runs (each resumes from its last checkpoint)
            process.terminate()
        for process, _ in live.values():
            process.join()
        if isinstance(error, KeyboardInterrupt) or type(error).__name__ == "Terminated":
            print(f"stopped ({error or 'interrupted'}): {len(live)} run(s) under way stopped; each resumes from its "
                  "last checkpoint when the study runs again", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failed:
        raise UsageError(f"run(s) failed: {'; '.join(failed)}; the finished runs' rows are kept, and the study "
                         f"resumes the rest when run again")


def default_threads(jobs: int, asked: Optional[int]) -> int:
    """Torch threads a run: the asked count, else the cores shared out among the jobs (at least one each)."""
    return asked or max(1, (os.cpu_count() or 1) // jobs)
