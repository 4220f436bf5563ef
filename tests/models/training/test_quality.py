"""FID / KID while training: logged at the chosen validations, usable by ModelCheckpoint; missing files stop
the run before it trains."""

import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules import DigitsDataModule
from models import SampleQualityCallback
from qgfd_gen.errors import DataUnavailableError
from extractor_cases import TinyExtractor


def fit(model, tmp_path, callbacks) -> L.Trainer:
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=0,
                        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=callbacks, default_root_dir=str(tmp_path))
    trainer.fit(model, DigitsDataModule(data_dir=str(tmp_path / "data"), image_size=8, batch_size=16, val_size=32))
    return trainer


def test_fid_and_kid_are_logged_and_keep_the_best_checkpoint(tiny_image_model, tmp_path):
    extractor = tmp_path / "extractor.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    quality = SampleQualityCallback(every_n_epochs=1, num_samples=12, steps=3, feature_extractor=str(extractor),
                                    kid_subset_size=6)
    best = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/fid", mode="min", save_top_k=1)
    trainer = fit(tiny_image_model(timesteps=50), tmp_path, [quality, best])
    assert math.isfinite(float(trainer.callback_metrics["val/fid"])) and "val/kid" in trainer.callback_metrics
    assert best.best_model_path and best.best_model_score is not None
    assert quality.last["val/fid"] == pytest.approx(float(trainer.callback_metrics["val/fid"]))


def test_a_missing_feature_extractor_stops_the_run_before_training(tiny_image_model, tmp_path):
    model = tiny_image_model(timesteps=50)
    before = [p.clone() for p in model.unet.parameters()]
    with pytest.raises(DataUnavailableError, match="nowhere.pt"):
        fit(model, tmp_path, [SampleQualityCallback(feature_extractor=str(tmp_path / "nowhere.pt"))])
    assert all(torch.equal(a, b) for a, b in zip(before, model.unet.parameters()))


def test_every_n_train_steps_measures_at_the_first_validation_after_each_multiple(tiny_image_model, tmp_path,
                                                                                  project_cache):
    from datamodules.image_sets import DatasetImages
    from models.measures.reference_stats import ReferenceKey, cached_statistics_path

    extractor = tmp_path / "extractor.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    measured = []

    class Recording(SampleQualityCallback):
        def on_validation_epoch_end(self, trainer, pl_module):
            before = self.last
            super().on_validation_epoch_end(trainer, pl_module)
            if self.last is not before:
                measured.append(trainer.global_step)

    quality = Recording(every_n_train_steps=3, num_samples=10, reference_images=12, steps=2,
                        feature_extractor=str(extractor), kid_subset_size=5)
    trainer = L.Trainer(max_steps=8, val_check_interval=2, limit_val_batches=1, num_sanity_val_steps=0,
                        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, callbacks=[quality], default_root_dir=str(tmp_path))
    trainer.fit(tiny_image_model(timesteps=50), DigitsDataModule(data_dir=str(tmp_path / "data"), image_size=8,
                                                                 batch_size=4, val_size=8))
    assert measured == [4, 6]  # validations at 2, 4, 6, 8: the first at or after 3 and after 6
    assert quality.quality.real_count == 12 and quality.state_dict() == {"measured_at": 2}
    key = ReferenceKey.of(DatasetImages(trainer.datamodule.train_set, 12, "the training set"), quality.quality)
    assert cached_statistics_path(key).is_file() and cached_statistics_path(key).is_relative_to(project_cache)
