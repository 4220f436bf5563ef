"""Molecule metrics as the field defines them: validity (RDKit sanitization, no correction, over all samples),
uniqueness (distinct canonical SMILES among the valid), novelty (share of the distinct valid not in the
canonical training SMILES), FCD against the test set (the `fcd` package and its ChemNet weights).
`MoleculeMetrics` is a torchmetrics Metric: canonical SMILES travel as 64-bit hashes, so the counts
synchronise across ranks."""

from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable, Optional, Sequence

import torch
from rdkit import Chem
from torch import Tensor
from torchmetrics import Metric

from datamodules.chemistry import canonical_smiles, fragment_report

MIN_FCD_SAMPLES = 2  # a covariance needs two


def smiles_hash(smiles: str) -> int:
    return int.from_bytes(hashlib.blake2b(smiles.encode(), digest_size=8).digest(), "little", signed=True)


class MoleculeMetrics(Metric):
    """Validity, uniqueness and novelty of generated molecules, as a torchmetrics `Metric` (so it synchronises
    across processes): update with lists of SMILES (None or "" for a sample that is not a molecule).

    Validity is RDKit sanitisation without correction; uniqueness is over the canonical SMILES of the valid
    samples; novelty against the canonical training SMILES.

    Args:
        train_smiles: the training set's SMILES, for novelty.
        **kwargs: torchmetrics `Metric` options (`sync_on_compute`, ...).

    Example:
        >>> metric = MoleculeMetrics(["CCO"], sync_on_compute=False)
        >>> metric.update(["CCO", "OCC", "CCN", None])
        >>> {k: round(float(v), 3) for k, v in metric.compute().items() if k in ("validity", "uniqueness", "novelty")}
        {'validity': 0.75, 'uniqueness': 0.667, 'novelty': 0.5}
    """

    full_state_update = False

    def __init__(self, train_smiles: Iterable[str], **kwargs: Any):
        super().__init__(**kwargs)
        train = {c for c in (canonical_smiles(s) for s in train_smiles) if c is not None}
        self.register_buffer("train_hashes", torch.tensor(sorted(smiles_hash(s) for s in train), dtype=torch.long), persistent=False)
        self.add_state("total", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("valid", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("hashes", default=[], dist_reduce_fx="cat")

    def update(self, samples: Sequence[Optional[str]]) -> None:
        canonical = [canonical_smiles(s) for s in samples]
        valid = [c for c in canonical if c is not None]
        self.total += len(canonical)
        self.valid += len(valid)
        self.hashes.append(torch.tensor([smiles_hash(s) for s in valid], dtype=torch.long, device=self.total.device))

    def compute(self) -> dict[str, Tensor]:
        hashes = self.hashes if isinstance(self.hashes, Tensor) else (torch.cat(self.hashes) if self.hashes else torch.zeros(0, dtype=torch.long))
        unique = torch.unique(hashes)
        novel = ~torch.isin(unique, self.train_hashes.to(unique.device))
        total, valid = self.total.float(), self.valid.float()
        return {
            "validity": valid / total.clamp(min=1),
            "uniqueness": unique.numel() / valid.clamp(min=1),
            "novelty": novel.sum() / max(1, unique.numel()),
            "num_samples": self.total.clone(),
            "num_valid": self.valid.clone(),
            "num_unique": torch.tensor(unique.numel()),
        }


class ChemNetReference:
    """ChemNet activation statistics of a reference set (the test set), computed once and reused for
    every sample set it is compared with."""

    def __init__(self, smiles: Sequence[str]):
        import fcd

        self._fcd = fcd
        self.model = fcd.load_ref_model()
        self.mean, self.cov = self._statistics([c for c in (canonical_smiles(s) for s in smiles) if c])

    def _statistics(self, smiles: Sequence[str]):
        import numpy as np

        activations = self._fcd.get_predictions(self.model, list(smiles), device="cpu")
        return activations.mean(0), np.cov(activations.T)

    def distance(self, samples: Sequence[Optional[str]]) -> float:
        """FCD of the valid samples (canonicalised) to the reference; NaN with fewer than two."""
        valid = [c for c in (canonical_smiles(s) for s in samples) if c]
        if len(valid) < MIN_FCD_SAMPLES:
            return float("nan")
        mean, cov = self._statistics(valid)
        return float(self._fcd.calculate_frechet_distance(mean, cov, self.mean, self.cov))


def frechet_chemnet_distance(samples: Sequence[str], reference: Sequence[str] | ChemNetReference) -> float:
    """FCD between the valid molecules of two SMILES lists, with the fcd package's ChemNet."""
    if not isinstance(reference, ChemNetReference):
        reference = ChemNetReference(reference)
    return reference.distance(samples)


def score_molecules(samples: Sequence[Optional[str]], train_smiles: Iterable[str] | MoleculeMetrics,
                    test_smiles: Optional[Sequence[str] | ChemNetReference] = None, with_fcd: bool = True) -> dict[str, float]:
    """All molecule metrics of one sample list, as plain numbers.

    Args:
        samples: generated SMILES (None for a sample that is not a molecule).
        train_smiles: the training SMILES (novelty), or a `MoleculeMetrics` built once from them.
        test_smiles: the test SMILES (FCD over the valid samples), or a `ChemNetReference` built once from them.
        with_fcd: compute FCD (needs `test_smiles`).

    Returns:
        validity, uniqueness, novelty, counts, fragment shares and `fcd` (None with an `fcd_note` when undefined).
    """
    metric = train_smiles if isinstance(train_smiles, MoleculeMetrics) else MoleculeMetrics(train_smiles, sync_on_compute=False)
    metric.reset()
    metric.update(samples)
    result = {k: float(v) if k not in ("num_samples", "num_valid", "num_unique") else int(v) for k, v in metric.compute().items()}
    if with_fcd and test_smiles is not None:
        fcd = frechet_chemnet_distance(samples, test_smiles)
        result["fcd"] = fcd if math.isfinite(fcd) else None
        if result["fcd"] is None:
            result["fcd_note"] = f"undefined: needs at least {MIN_FCD_SAMPLES} valid samples, got {result['num_valid']}"
    return result


def fragment_scores(raw_mols: Sequence[Optional[Chem.Mol]]) -> dict[str, float]:
    """The share of samples in one connected piece, and the share whose largest piece is a valid molecule
    (DiGress's two numbers beside validity), from unsanitized molecules (None counts as neither)."""
    reports = [fragment_report(raw) for raw in raw_mols]
    count = max(1, len(reports))
    return {"connected": sum(c for c, _ in reports) / count, "largest_fragment_validity": sum(v for _, v in reports) / count}
