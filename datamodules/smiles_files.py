"""Reading SMILES files the way people keep them: one SMILES per line (optionally followed by a name), with
or without a header line, or a CSV / TSV with a SMILES column. What was read is said in one log line.

Samples files (what `qgfd-sample molecules` writes) keep one line per sample, an empty line for an invalid
one; reference files (training and test sets) skip empty lines.
"""

from __future__ import annotations

import csv
import gzip
import logging
from pathlib import Path
from typing import IO, Optional

from qgfd_gen.errors import DataUnavailableError, UsageError

log = logging.getLogger(__name__)
HEADER_WORDS = {"smiles", "smile", "canonical_smiles", "smi"}


def read_smiles_file(path: str | Path, column: Optional[str] = None, keep_empty: bool = False) -> list[str]:
    """The SMILES of a file, in order. keep_empty: an empty line (or cell) is kept as '' (an invalid sample)."""
    path = Path(path)
    if not path.is_file():
        raise DataUnavailableError(f"SMILES file {str(path)!r} does not exist" if not path.exists()
                                   else f"SMILES file {str(path)!r} is not a file")
    try:
        with _open_text(path) as handle:
            text = handle.read()
    except (UnicodeDecodeError, OSError, EOFError):
        raise UsageError(f"{str(path)!r} is not a text file of SMILES (plain or .gz)") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]  # the final newline ends the last line; it is no sample
    first = next((line for line in lines if line.strip()), "")
    if column is not None or "," in first or (first.count("\t") and _is_header(first.split("\t")[0])):
        smiles = _read_table(path, lines, column)
    else:
        if first and _is_header(first.split()[0]):
            log.warning("%s: first line %r taken as a header", path, first.strip())
            lines = lines[lines.index(first) + 1 :]
        smiles = [line.split()[0] if line.strip() else "" for line in lines]
    return smiles if keep_empty else [s for s in smiles if s]


def _open_text(path: Path) -> IO[str]:
    """A text handle on a plain or gzip-compressed (.gz) file."""
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def _is_header(field: str) -> bool:
    return field.strip().strip('"').lower() in HEADER_WORDS


def _read_table(path: Path, lines: list[str], column: Optional[str]) -> list[str]:
    first = next((line for line in lines if line.strip()), "")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    with _open_text(path) as handle:  # the csv reader, not lines: quoted cells may hold newlines
        rows = list(csv.reader(handle, delimiter=delimiter))
    header = [name.strip() for name in rows[0]] if rows else []
    if column is None:
        column = next((name for name in header if _is_header(name)), None)
        if column is None:
            raise UsageError(f"{str(path)!r} looks like a table with columns {header} but none is a SMILES column; "
                             f"name that column SMILES, or give one SMILES per line (a data module's config also "
                             f"takes `column:`)")
    if column not in header:
        raise UsageError(f"{str(path)!r} has no column {column!r}; its columns are {header}")
    index = header.index(column)
    log.warning("%s: read column %r of %d rows", path, column, len(rows) - 1)
    return [(row[index].strip() if index < len(row) else "") for row in rows[1:]]
