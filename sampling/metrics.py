"""Quality metrics as the field defines them.

Molecules: validity (RDKit sanitization, no correction, over all samples), uniqueness (distinct canonical
SMILES among the valid), novelty (share of the distinct valid not in the canonical training SMILES),
FCD against the test set (the `fcd` package and its ChemNet weights). `MoleculeMetrics` is a
torchmetrics Metric: canonical SMILES travel as 64-bit hashes, so the counts synchronise across ranks.

Images: FID and IS through torchmetrics on InceptionV3 (torch-fidelity's weights, which must be on disk
here), or on any feature extractor module (a small one in tests).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

import torch
from rdkit import Chem
from torch import Tensor, nn
from torchmetrics import Metric

from datamodules.chemistry import canonical_smiles, fragment_report

MIN_FCD_SAMPLES = 2  # a covariance needs two
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


# ------------------------------------------------------------------------------------------------ molecules
def smiles_hash(smiles: str) -> int:
    return int.from_bytes(hashlib.blake2b(smiles.encode(), digest_size=8).digest(), "little", signed=True)


class MoleculeMetrics(Metric):
    """Validity, uniqueness and novelty of generated molecules (update with lists of SMILES or None)."""

    full_state_update = False

    def __init__(self, train_smiles: Iterable[str], **kwargs):
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
    """All molecule metrics of one sample list, as plain numbers (FCD over the valid samples).
    Pass a MoleculeMetrics and a ChemNetReference to score many lists against the same sets cheaply."""
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


# ------------------------------------------------------------------------------------------------ images
class InceptionUnavailable(RuntimeError):
    """InceptionV3 weights are neither given nor in the torch hub cache, and nothing is downloaded here."""


def inception_weights_path(explicit: Optional[str] = None) -> Path:
    """The InceptionV3 (torch-fidelity) weights file: `explicit`, else $TORCH_HOME/hub/checkpoints/<file>."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise InceptionUnavailable(f"--inception-weights {str(path)!r} is not a file")
        return path
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    path = torch_home / "hub" / "checkpoints" / INCEPTION_FILE
    if not path.is_file():
        raise InceptionUnavailable(
            f"InceptionV3 weights are missing: {INCEPTION_FILE} is not in {str(path.parent)!r}. Download it from "
            f"{INCEPTION_URL} and put it there (or pass --inception-weights PATH). FID and IS were not computed."
        )
    return path


IS_SPLITS = 10  # IS is the mean over 10 splits of the samples and is_std their spread (Salimans et al.)


class ImageQuality(nn.Module):
    """FID and IS over one feature extractor. `feature_extractor=None` uses InceptionV3 (weights from
    `inception_weights`); a custom module maps images in [0, 1] to features (FID) and logits (IS) —
    it must return logits of shape [B, classes] and expose `features(x)` [B, F]. Computed where the images
    are (under several processes the main one gathers every share first), so the metrics never sync."""

    def __init__(self, feature_extractor: Optional[nn.Module] = None, inception_weights: Optional[str] = None,
                 want_fid: bool = True, want_is: bool = True):
        super().__init__()
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore

        self.fid = self.inception_score = None
        if feature_extractor is None:
            from torchmetrics.image.fid import NoTrainInceptionV3

            weights = str(inception_weights_path(inception_weights))
            if want_fid:
                self.fid = FrechetInceptionDistance(feature=2048, normalize=True, reset_real_features=False,
                                                    feature_extractor_weights_path=weights, sync_on_compute=False)
            if want_is:
                logits = NoTrainInceptionV3("inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path=weights)
                self.inception_score = InceptionScore(feature=logits, normalize=True, sync_on_compute=False)
        else:
            if want_fid:
                self.fid = FrechetInceptionDistance(feature=ExtractorFeatures(feature_extractor), normalize=True,
                                                    reset_real_features=False, sync_on_compute=False)
            if want_is:
                self.inception_score = InceptionScore(feature=feature_extractor, normalize=True, splits=IS_SPLITS,
                                                      sync_on_compute=False)

    def update_real(self, images: Tensor) -> None:
        if self.fid is not None:
            self.fid.update(rgb(images), real=True)

    def update_fake(self, images: Tensor) -> None:
        if self.fid is not None:
            self.fid.update(rgb(images), real=False)
        if self.inception_score is not None:
            self.inception_score.update(rgb(images))

    def real_state(self) -> dict[str, Tensor]:
        """Real-data statistics, to cache once per data set and resolution."""
        f = self.fid
        return {"sum": f.real_features_sum, "cov_sum": f.real_features_cov_sum, "num": f.real_features_num_samples}

    def load_real_state(self, state: dict[str, Tensor]) -> None:
        f = self.fid
        f.real_features_sum, f.real_features_cov_sum, f.real_features_num_samples = state["sum"], state["cov_sum"], state["num"]

    def compute(self) -> dict[str, float]:
        out = {}
        if self.fid is not None:
            out["fid"] = float(self.fid.compute())
        if self.inception_score is not None:
            with torch.random.fork_rng(devices=[]):  # IS shuffles its features (torch.randperm) before the
                torch.manual_seed(0)  # splits: a fixed shuffle makes it a function of the images alone
                mean, std = self.inception_score.compute()
            out["is"], out["is_std"] = float(mean), float(std)  # std is NaN (null in JSON) with one split
        return out

    def reset_fake(self) -> None:
        if self.fid is not None:
            self.fid.reset()  # reset_real_features=False keeps the real statistics
        if self.inception_score is not None:
            self.inception_score.reset()


def rgb(images: Tensor) -> Tensor:
    """Grey images as three equal channels, for extractors that take RGB."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


class ExtractorFeatures(nn.Module):
    """The `features` view of a custom extractor, for FID."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor

    def forward(self, x: Tensor) -> Tensor:
        return self.extractor.features(x)
