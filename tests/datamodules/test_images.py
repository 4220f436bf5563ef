"""Image data: the offline digits, image folders, and plain errors for data that is missing here."""

import types

import pytest
import torch
from PIL import Image

from datamodules.images import flip_half
from datamodules import CelebADataModule, CIFAR10DataModule, DataUnavailableError, DigitsDataModule, ImageFolderDataModule


def test_digits_data_is_offline_and_in_range():
    data = DigitsDataModule(image_size=16)
    data.setup()
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (64, 1, 16, 16)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.3
    assert len(data.train_set) + len(data.val_set) == 1797


def test_image_folder_with_class_subfolders(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (50, 30), (i * 40, 100, 200)).save(tmp_path / cls / f"{i}.jpg")
    data = ImageFolderDataModule(str(tmp_path), image_size=16, batch_size=2, num_workers=0, val_size=1)
    data.setup()
    assert len(data.train_set) == 5 and len(data.val_set) == 1
    batch = next(iter(data.train_dataloader()))
    assert batch.shape == (2, 3, 16, 16) and batch.min() >= -1 and batch.max() <= 1


def test_missing_data_fails_plainly(tmp_path):
    with pytest.raises(DataUnavailableError, match="cifar-10-python.tar.gz"):
        CIFAR10DataModule(str(tmp_path), download=False).prepare_data()
    with pytest.raises(DataUnavailableError, match="img_align_celeba"):
        CelebADataModule(str(tmp_path)).prepare_data()
    with pytest.raises(DataUnavailableError, match="no images"):
        ImageFolderDataModule(str(tmp_path)).setup()


def test_flips_are_drawn_per_training_batch_and_never_touch_the_data_set():
    torch.manual_seed(0)
    images = torch.randn(400, 1, 4, 6)
    flipped = flip_half(images)
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    assert ((flipped == images).flatten(1).all(1) | mirrored).all()  # each image itself or its mirror
    assert 150 < int(mirrored.sum()) < 250
    data = DigitsDataModule(image_size=8, flip=True)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert torch.equal(batch[0][0], data.train_set[data.train_dataloader().sampler.order(0)[0]][0])  # loads unflipped
    for training in (False, True):
        data.trainer = types.SimpleNamespace(training=training)
        torch.manual_seed(1)
        out = data.on_after_batch_transfer(batch, 0)
        assert torch.equal(out[1], batch[1]) and torch.equal(out[0], batch[0]) is not training
    data.flip = False
    assert data.on_after_batch_transfer(batch, 0) is batch
