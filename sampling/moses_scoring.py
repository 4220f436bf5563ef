"""MOSES's scorecard inside `qgfd-eval molecules --moses`: the reference sets' statistics (Test, and TestSF where
there is one), computed once and cached as plain arrays (an .npz loaded without pickle) under $QGFD_CACHE, keyed by
the reference's content, so a study scoring many checkpoints pays for MOSES's 176,074 test molecules once."""

from __future__ import annotations

import functools
import hashlib
import sys
import time
from typing import Any, Optional, Sequence

import numpy as np

from models.measures.inception import cache_dir, check_cache_writable
from models.measures.moses_metrics import MosesReference, moses_scores
from qgfd_gen.io import atomic_path


def reference_digest(smiles: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for s in smiles:
        digest.update(s.encode() + b"\n")
    return digest.hexdigest()[:24]


@functools.lru_cache(maxsize=4)
def cached_reference(smiles: tuple[str, ...], role: str) -> MosesReference:
    """The reference's statistics: from the cache when its content matches, else computed (minutes for MOSES's
    test set, said on stderr) and cached."""
    path = cache_dir() / "moses-references" / f"{role}-{len(smiles)}-{reference_digest(smiles)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return MosesReference.from_arrays(arrays)
        except (ValueError, KeyError, OSError) as error:
            print(f"warning: ignoring the unreadable cached MOSES reference {path} ({error}); computing it again",
                  file=sys.stderr)
    check_cache_writable()  # before minutes of reference statistics, not after
    start = time.perf_counter()
    print(f"computing MOSES statistics of the {role} set ({len(smiles)} molecules), once; cached in {path}",
          file=sys.stderr)
    reference = MosesReference(list(smiles))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **reference.arrays())
    print(f"  done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return reference


def moses_columns(samples: Sequence[Optional[str]], test: Optional[Sequence[str]],
                  test_sf: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """MOSES's metrics of the samples against Test (and TestSF), with what each was computed against."""
    references = {}
    if test:
        references["test"] = cached_reference(tuple(test), "test")
    if test_sf:
        references["testsf"] = cached_reference(tuple(test_sf), "testsf")
    scores = moses_scores(samples, references)
    notes = scores.pop("notes")
    scores["moses_references"] = {name: reference.size for name, reference in references.items()}
    if notes:
        scores["moses_notes"] = notes
    return scores


def scorecard_columns(samples: Sequence[Optional[str]], test: Optional[Sequence[str]],
                      test_sf: Optional[Sequence[str]], moses: bool) -> dict[str, Any]:
    """The columns beside quality in a molecule row: IntDiv1, IntDiv2 and Filters (no reference; well under a
    second for 1,000) in every row, and with `moses` MOSES's whole table, which holds those three, computed once."""
    if moses:
        return moses_columns(samples, test, test_sf)
    from models.measures.moses_metrics import sample_diversity

    return sample_diversity(samples)
