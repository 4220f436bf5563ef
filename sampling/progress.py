"""The progress bar of long sampling work (sweeps, sample files): one line per setting, drawn by the main
process only."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(shard=None) -> Progress:
    """A rich progress bar; under several processes only the main one draws it (the others' would interleave),
    counting its own share."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=False, disable=shard is not None and not shard.is_main)
