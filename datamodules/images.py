"""Image data: CIFAR-10, CelebA 64x64, any image folder, and scikit-learn's digits (no download).

Every module yields image tensors in [-1, 1] of shape [C, size, size]. Where data must come from the
network and cannot, setup fails before training with one message naming the missing files, where
they go, and how to fetch them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import logging

import lightning as L
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchvision import transforms as T

from qgfd_gen.downloads import download_or_explain
from qgfd_gen.errors import DataUnavailableError

from .loaders import evaluation_loader, training_loader

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def to_unit_range() -> Callable:
    return T.Lambda(lambda x: x * 2 - 1)


def image_transform(size: int, crop: Optional[int] = None, channels: int = 3) -> Callable:
    """Centre crop (to `crop`, or the shorter side), resize to size x size, to [-1, 1]. (Flips are drawn per
    training batch: `ImageDataModule.on_after_batch_transfer`.)"""
    steps = [T.Lambda(lambda img: img.convert("RGB" if channels == 3 else "L"))]
    steps.append(T.CenterCrop(crop) if crop else T.Lambda(_centre_square))
    steps += [T.Resize(size, interpolation=T.InterpolationMode.BICUBIC, antialias=True)]
    steps += [T.ToTensor(), to_unit_range()]
    return T.Compose(steps)


def flip_half(images: torch.Tensor) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2, drawn from the global generator."""
    mirrored = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(mirrored[:, None, None, None], images.flip(-1), images)


def _centre_square(img: Image.Image) -> Image.Image:
    side = min(img.size)
    return T.functional.center_crop(img, [side, side])


class ImageDataModule(L.LightningDataModule):
    """Shared loader logic; subclasses provide `build_datasets()` -> (train, val)."""

    def __init__(self, data_dir: str = "data", image_size: int = 32, batch_size: int = 128, num_workers: int = 2,
                 flip: bool = True, val_size: int = 1000, seed: int = 0):
        super().__init__()
        for name, value, low in (("image_size", image_size, 1), ("batch_size", batch_size, 1),
                                 ("num_workers", num_workers, 0), ("val_size", val_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r}; need an integer >= {low}")
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.flip, self.val_size, self.seed = flip, val_size, seed
        self.train_set: Optional[Dataset] = None
        self.val_set: Optional[Dataset] = None

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        raise NotImplementedError

    def setup(self, stage: Optional[str] = None) -> None:
        if self.train_set is None:
            self.train_set, self.val_set = self.build_datasets()

    def _loader(self, dataset: Dataset) -> DataLoader:
        return evaluation_loader(dataset, self.batch_size, self.num_workers)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Random flips of training batches, drawn on the batch's device from the training stream (after the
        transfer, so loading stays deterministic): a resumed run and every arm of a seed flip alike, and the
        training set's images (FID's references) are never flipped."""
        if not self.flip or self.trainer is None or not self.trainer.training:
            return batch
        if isinstance(batch, (tuple, list)):
            return type(batch)([flip_half(batch[0]), *batch[1:]])
        return flip_half(batch)

    def train_dataloader(self) -> DataLoader:
        """In an order that survives a resume (see loaders)."""
        return training_loader(self.train_set, self.batch_size, self.num_workers, self.trainer,
                               drop_last=len(self.train_set) >= self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def _split(self, dataset: Dataset) -> tuple[Dataset, Dataset]:
        """Hold out `val_size` items with a seeded permutation."""
        n = len(dataset)
        val_size = min(self.val_size, max(1, n // 10))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        return Subset(dataset, order[val_size:]), Subset(dataset, order[:val_size])


class ImageFolderDataModule(ImageDataModule):
    """Every image below `data_dir` (class subfolders or flat), centre-cropped and resized. Every file is
    checked at setup: a corrupt one stops it there, naming the file, or is skipped and counted with
    `skip_corrupt` (never a crash mid-epoch)."""

    def __init__(self, data_dir: str = "images", image_size: int = 32, batch_size: int = 128, num_workers: int = 2,
                 flip: bool = True, val_size: int = 1000, seed: int = 0, crop: Optional[int] = None, channels: int = 3,
                 skip_corrupt: bool = False):
        super().__init__(data_dir, image_size, batch_size, num_workers, flip, val_size, seed)
        self.crop, self.channels, self.skip_corrupt = crop, channels, skip_corrupt

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        files = readable_images(list_images(self.data_dir), self.skip_corrupt)
        return self._split(ImageFiles(files, image_transform(self.image_size, self.crop, self.channels)))


def first_images(dataset: Dataset, count: int) -> torch.Tensor:
    """The first `count` images of a data set (items may be (image, label)), in [-1, 1]: a fixed,
    reproducible set (FID's real images, NLL's held-out ones)."""
    items = [dataset[index] for index in range(min(count, len(dataset)))]
    return torch.stack([item[0] if isinstance(item, (tuple, list)) else item for item in items])


def list_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataUnavailableError(f"image folder {str(folder)!r} does not exist; point data_dir at a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataUnavailableError(
            f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found below {str(folder)!r}"
        )
    return files


def readable_images(files: list[Path], skip_corrupt: bool) -> list[Path]:
    """The files PIL can read whole; a corrupt one raises (naming it) unless skip_corrupt, which logs a count."""
    bad = []
    for path in files:
        try:
            with Image.open(path) as img:
                img.verify()
        except Exception as error:  # PIL raises many kinds for broken files
            if not skip_corrupt:
                raise DataUnavailableError(f"image {str(path)!r} is corrupt ({type(error).__name__}: {error}); "
                                           f"replace or remove it, or set skip_corrupt: true to skip such files") from None
            bad.append(path)
    if bad:
        log.warning("skipped %d corrupt images of %d (first: %s)", len(bad), len(files), bad[0])
    skipped = set(bad)
    good = [p for p in files if p not in skipped]
    if not good:
        raise DataUnavailableError(f"none of the {len(files)} images is readable")
    return good


class ImageFiles(Dataset):
    def __init__(self, files: list[Path], transform: Callable):
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.files[index]) as img:
            return self.transform(img)


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 through torchvision: read from `data_dir/cifar-10-batches-py`, downloaded there when
    missing (and `download` is true). Validation is the official test split."""

    def __init__(self, data_dir: str = "data", image_size: int = 32, batch_size: int = 128, num_workers: int = 2,
                 flip: bool = True, val_size: int = 10000, seed: int = 0, download: bool = True):
        super().__init__(data_dir, image_size, batch_size, num_workers, flip, val_size, seed)
        self.download = download

    ARCHIVE = "cifar-10-python.tar.gz"
    URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

    def prepare_data(self) -> None:
        from torchvision.datasets import CIFAR10

        if (self.data_dir / "cifar-10-batches-py").is_dir():
            return
        download_or_explain(
            (lambda: CIFAR10(self.data_dir, train=True, download=True)) if self.download else None,
            f"CIFAR-10 is not in {str(self.data_dir / 'cifar-10-batches-py')!r} and could not be downloaded.\n"
            f"Put {self.ARCHIVE} (from {self.URL}) into {str(self.data_dir)!r} and run again, or extract it there "
            f"so that {str(self.data_dir / 'cifar-10-batches-py')!r} exists.",
        )

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        from torchvision.datasets import CIFAR10

        self.prepare_data()
        train = CIFAR10(self.data_dir, train=True, transform=_tensor_transform(self.image_size))
        val = CIFAR10(self.data_dir, train=False, transform=_tensor_transform(self.image_size))
        return train, Subset(val, range(min(self.val_size, len(val))))


def _tensor_transform(size: int) -> Callable:
    steps = [T.Resize(size, antialias=True)] if size != 32 else []
    return T.Compose(steps + [T.ToTensor(), to_unit_range()])


class CelebADataModule(ImageDataModule):
    """CelebA at 64x64 with the usual 140 x 140 centre crop then resize. Reads torchvision's CelebA files
    (`data_dir/celeba/img_align_celeba/...`) or, with `image_folder`, any folder of aligned faces."""

    def __init__(self, data_dir: str = "data", image_size: int = 64, batch_size: int = 128, num_workers: int = 4,
                 flip: bool = True, val_size: int = 1000, seed: int = 0, crop: int = 140, image_folder: Optional[str] = None,
                 skip_corrupt: bool = False):
        super().__init__(data_dir, image_size, batch_size, num_workers, flip, val_size, seed)
        self.crop, self.image_folder, self.skip_corrupt = crop, image_folder, skip_corrupt

    def _faces_folder(self) -> Path:
        if self.image_folder:
            return Path(self.image_folder)
        folder = self.data_dir / "celeba" / "img_align_celeba"
        if not folder.is_dir():
            raise DataUnavailableError(
                f"CelebA images are not in {str(folder)!r}. CelebA is downloaded by hand (Google Drive limits "
                f"automatic downloads): get img_align_celeba.zip from the CelebA site "
                f"(mmlab.ie.cuhk.edu.hk/projects/CelebA.html), extract it into {str(self.data_dir / 'celeba')!r}, "
                f"or set image_folder to a folder of aligned faces."
            )
        return folder

    def prepare_data(self) -> None:
        list_images(self._faces_folder())

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        files = readable_images(list_images(self._faces_folder()), self.skip_corrupt)
        return self._split(ImageFiles(files, image_transform(self.image_size, self.crop)))


class DigitsDataModule(ImageDataModule):
    """scikit-learn's 1,797 handwritten 8x8 digits, upscaled (bilinear) to `image_size`, one channel in [-1, 1].
    It ships with scikit-learn: no download, the offline default.

    Args:
        data_dir: unused (the images ship with scikit-learn); kept for a common signature.
        image_size: the side the digits are upscaled to.
        batch_size: images per training batch.
        num_workers: data loader workers.
        flip: random horizontal flips (off: digits are not mirror-symmetric).
        val_size: images held out for validation.
        seed: the seed of the split and of the training order.

    Example:
        >>> data = DigitsDataModule(image_size=8, batch_size=4)
        >>> data.setup()
        >>> images, labels = next(iter(data.train_dataloader()))
        >>> images.shape, float(images.min()) >= -1, float(images.max()) <= 1
        (torch.Size([4, 1, 8, 8]), True, True)
    """

    def __init__(self, data_dir: str = "data", image_size: int = 16, batch_size: int = 64, num_workers: int = 0,
                 flip: bool = False, val_size: int = 180, seed: int = 0):
        super().__init__(data_dir, image_size, batch_size, num_workers, flip, val_size, seed)

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # [N, 1, 8, 8] in [0, 1]
        images = torch.nn.functional.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False)
        images = images.clamp(0, 1) * 2 - 1
        return self._split(TensorDataset(images, torch.tensor(digits.target)))
