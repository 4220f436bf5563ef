"""Image quality while training: FID and KID of EMA samples every few epochs, logged like any metric.

    callbacks:
      - class_path: models.SampleQualityCallback
        init_args: {every_n_epochs: 40, num_samples: 500, feature_extractor: data/digits-classifier.pt}

`val/fid` and `val/kid` are logged at the end of the chosen validations, so `ModelCheckpoint(monitor=
"val/fid", mode="min")` can keep the best checkpoint (as lucidrains' Trainer does with its FID). Real
features come from the first `num_samples` training images, computed once. Without a feature extractor
InceptionV3 is used, whose weights must already be on disk: if they are not, the run stops at setup,
before training, naming the file; a feature extractor file that does not exist is named the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning as L
import torch

from qgfd_gen.errors import DataUnavailableError


class SampleQualityCallback(L.Callback):
    def __init__(self, every_n_epochs: int = 10, num_samples: int = 500, sampler: str = "ddim", steps: int = 50,
                 seed: int = 0, feature_extractor: Optional[str] = None, inception_weights: Optional[str] = None,
                 kid_subset_size: int = 100):
        if every_n_epochs < 1 or num_samples < 2:
            raise ValueError(f"every_n_epochs={every_n_epochs}, num_samples={num_samples}: need >= 1 and >= 2")
        self.every_n_epochs, self.num_samples, self.sampler, self.steps, self.seed = every_n_epochs, num_samples, sampler, steps, seed
        self.feature_extractor, self.inception_weights = feature_extractor, inception_weights
        self.kid_subset_size = min(kid_subset_size, num_samples)
        self.fid = self.kid = None
        self.last: dict[str, float] = {}

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        """Build the metrics now, so that a missing extractor or Inception weights stop the run before training."""
        if stage != "fit" or self.fid is not None:
            return
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        from sampling.metrics import ExtractorFeatures, InceptionUnavailable, inception_weights_path

        if self.feature_extractor:
            if not Path(self.feature_extractor).is_file():
                raise DataUnavailableError(f"feature_extractor {self.feature_extractor!r} does not exist; for digits make it "
                                           f"with: python -m sampling.feature_extractors --out {self.feature_extractor}")
            feature = ExtractorFeatures(torch.jit.load(self.feature_extractor, map_location="cpu").eval())
            self.fid = FrechetInceptionDistance(feature=feature, normalize=True, reset_real_features=False)
            self.kid = KernelInceptionDistance(feature=feature, normalize=True, reset_real_features=False,
                                               subset_size=self.kid_subset_size)
        else:
            try:
                weights = str(inception_weights_path(self.inception_weights))
            except InceptionUnavailable as error:
                raise DataUnavailableError(f"SampleQualityCallback: {error}") from None
            self.fid = FrechetInceptionDistance(feature=2048, normalize=True, reset_real_features=False,
                                                feature_extractor_weights_path=weights)
            self.kid = KernelInceptionDistance(feature=2048, normalize=True, reset_real_features=False,
                                               subset_size=self.kid_subset_size, feature_extractor_weights_path=weights)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs or self.fid is None:
            return
        from datamodules.images import first_images
        from sampling.metrics import rgb

        if not bool(self.fid.real_features_num_samples):
            real = first_images(trainer.datamodule.train_set, self.num_samples).add(1).div(2)
            for metric in (self.fid, self.kid):
                metric.update(rgb(real), real=True)
        images = pl_module.sample(self.num_samples, sampler=self.sampler, steps=self.steps, seed=self.seed).images
        for metric in (self.fid, self.kid):
            metric.reset()  # the fake features only: reset_real_features=False
            metric.update(rgb(images), real=False)
        kid_mean, _ = self.kid.compute()
        self.last = {"val/fid": float(self.fid.compute()), "val/kid": float(kid_mean)}
        pl_module.log_dict(self.last, sync_dist=True)
