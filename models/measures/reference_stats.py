"""Reference statistics for FID and KID: computed once per image set, network and resize, then read back.

A file holds the key it was made under (the image set's content hash, the network's id, the resize, the
count) beside the metric state, so a file made with another network is refused rather than silently
compared. Files live where the project keeps derived files ($QGFD_CACHE, else ~/.cache/qgfd-gen) and are
written whole or not at all. Statistics made elsewhere as an .npz of `mu` and `sigma` (TTUR's format) serve
FID only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import torch
from torch import Tensor

from qgfd_gen.errors import UsageError
from qgfd_gen.io import atomic_path

from .image_metrics import ImageQuality
from .inception import cache_dir, check_cache_writable

FORMAT = 1


class IncompleteStatistics(UsageError):
    """A statistics file without what a requested metric needs (KID's features, FID's sums)."""


@dataclass(frozen=True)
class ReferenceKey:
    """What a set of reference statistics is a function of."""

    content: str  # SHA-256 of the image set
    network: str  # the feature network's id (name and content hash)
    resize: Optional[str]  # how images reach the network's input size
    count: int  # images in the statistics

    @classmethod
    def of(cls, images, quality: ImageQuality) -> "ReferenceKey":
        """The key of an image set (anything with `content_digest()` and a length) on `quality`'s network."""
        return cls(content=images.content_digest(), network=quality.network, resize=quality.resize, count=len(images))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:20]


def cached_statistics_path(key: ReferenceKey) -> Path:
    return cache_dir() / "reference-stats" / f"reference-{key.count}-{key.digest()}.pt"


def save_statistics(path: str | Path, quality: ImageQuality, key: ReferenceKey) -> Path:
    state = {name: value.detach().cpu() for name, value in quality.real_state().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "key": asdict(key), "state": state}, tmp)
    return Path(path)


def load_statistics(path: str | Path, quality: ImageQuality, what: str = "--reference") -> Optional[ReferenceKey]:
    """Load a statistics file into `quality`'s real state; the key it was made under (None for a mu / sigma .npz).
    Refused plainly: a file of another format, another network, or without what a requested metric needs."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {str(path)!r} does not exist")
    if path.suffix == ".npz":
        _load_mu_sigma(path, quality, what)
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not its own
        raise UsageError(f"{what} {str(path)!r} is not a statistics file qgfd-eval wrote ({error})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise UsageError(f"{what} {str(path)!r} is not a statistics file of format {FORMAT} (qgfd-eval images "
                         f"--save-reference writes them)")
    try:
        key = ReferenceKey(**saved["key"])
        state = dict(saved["state"])
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{what} {str(path)!r} is a statistics file with a damaged `key` or `state` ({error!r}); "
                         f"write it again with qgfd-eval images --save-reference") from None
    if key.network != quality.network:
        raise UsageError(f"{what} {str(path)!r} was computed with network {key.network!r}; this run scores with "
                         f"{quality.network!r}: compute the reference with the same network")
    if quality.kid is not None and "kid_features" not in state:
        raise IncompleteStatistics(f"{what} {str(path)!r} holds FID statistics only; KID and prdc need the reference's features "
                         f"(drop kid and prdc from --metrics, or give the reference images)")
    if quality.fid is not None and "sum" not in state:
        raise IncompleteStatistics(f"{what} {str(path)!r} holds no FID statistics")
    quality.load_real_state(state)
    return key


def _load_mu_sigma(path: Path, quality: ImageQuality, what: str) -> None:
    if quality.kid is not None:
        raise IncompleteStatistics(f"{what} {str(path)!r} holds mean and covariance only; KID and prdc need the reference's features "
                         f"(drop kid and prdc from --metrics, or give the reference images)")
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
    except Exception as error:  # not an .npz (a renamed .npy), no mu / sigma, object arrays: never unpickled
        raise UsageError(f"{what} {str(path)!r} is not an .npz of numeric mu and sigma ({type(error).__name__}: "
                         f"{error})") from None
    check_mu_sigma(mu, sigma, f"{what} {str(path)!r}")
    width = quality.fid.real_features_sum.shape[0]
    if mu.shape != (width,) or sigma.shape != (width, width):
        raise UsageError(f"{what} {str(path)!r}: mu {mu.shape} and sigma {sigma.shape} do not match the network's "
                         f"{width} features (need ({width},) and ({width}, {width}))")
    n = 2  # FID reads mean and covariance back from (sum, cov_sum, n); any n > 1 gives them exactly
    mean, cov = torch.from_numpy(mu), torch.from_numpy(sigma)
    quality.load_real_state({"sum": mean * n, "cov_sum": cov * (n - 1) + n * torch.outer(mean, mean),
                             "num": torch.tensor(n)})


def saved_key(path: Path) -> Optional[ReferenceKey]:
    """The content key a cached statistics file was saved under (None when it is not one of ours)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return ReferenceKey(**saved["key"]) if isinstance(saved, dict) and saved.get("format") == FORMAT else None
    except Exception:  # unreadable, another format: recomputed and replaced
        return None


def check_mu_sigma(mu: np.ndarray, sigma: np.ndarray, what: str) -> None:
    """Statistics that cannot give a wrong FID quietly: finite, sigma symmetric and positive semi-definite (to a
    tolerance relative to its largest eigenvalue, as a covariance computed in floating point is)."""
    if mu.ndim != 1 or sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1]:
        raise UsageError(f"{what}: mu {mu.shape} and sigma {sigma.shape} are not a mean vector and a square covariance")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise UsageError(f"{what}: mu or sigma holds NaN or infinite values; FID from them would be meaningless")
    scale = max(float(np.abs(sigma).max()), 1e-12)
    if not np.allclose(sigma, sigma.T, atol=1e-6 * scale, rtol=0):
        raise UsageError(f"{what}: sigma is not symmetric (largest asymmetry {np.abs(sigma - sigma.T).max():.3g}); "
                         "a covariance is")
    lowest = float(np.linalg.eigvalsh((sigma + sigma.T) / 2).min())
    if lowest < -1e-6 * scale:
        raise UsageError(f"{what}: sigma is not positive semi-definite (eigenvalue {lowest:.3g}); a covariance is")


def reference_statistics(quality: ImageQuality, images: Iterable[Tensor], key: ReferenceKey,
                         progress: Optional[Callable[[int], None]] = None) -> tuple[Path, bool]:
    """Fill `quality`'s real state for `key`: from the cache, or from `images` (batches in [0, 1]) and then
    cached. Returns the statistics file and whether it was computed now."""
    path = cached_statistics_path(key)
    if path.is_file():
        try:
            if saved_key(path) == key:  # another set's statistics under this set's name are computed again
                load_statistics(path, quality, "cached reference statistics")
                return path, False
        except IncompleteStatistics:  # made for fewer metrics (FID alone, say): computed again, and replaced
            pass
    check_cache_writable()  # before the statistics are computed, not after
    for batch in images:
        quality.update_real(batch)
        if progress is not None:
            progress(len(batch))
    if quality.real_count != key.count:
        raise RuntimeError(f"the reference set gave {quality.real_count} images, its key says {key.count}")
    return save_statistics(path, quality, key), True
