"""Image sets to score, wherever they came from: a folder of PNG / JPEG files, a `.npz` of uint8 images, or the
first images of a data module. Each yields float batches in [0, 1] at the images' own size (the metric's network
resizes, as its protocol says) and names its content by a hash, so reference statistics are computed once per set.

Everything is checked when the set is opened, before any work: a missing or empty folder, files that are not
images, unreadable files, images that are not RGB, arrays of the wrong shape or type are refused, naming them.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from qgfd_gen.errors import UsageError
from qgfd_gen.limits import check_image_pixels, check_npz_sizes

from .images import IMAGE_SUFFIXES

STAT_KEYS = ("mu", "sigma")  # an .npz of FID statistics (TTUR's and guided-diffusion's reference files)


class ImageSet:
    """Images in [0, 1], RGB, [B, 3, H, W] batches; consecutive images of one size share a batch."""

    description: str

    def __len__(self) -> int:
        raise NotImplementedError

    def content_digest(self) -> str:
        """SHA-256 of what the set holds (file bytes, or array bytes): the key of its cached statistics."""
        raise NotImplementedError

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        raise NotImplementedError


class FolderImages(ImageSet):
    """Every PNG / JPEG / ... below a folder (sorted by relative path); hidden files are ignored."""

    def __init__(self, folder: str | Path, what: str = "--samples"):
        folder = Path(folder)
        if not folder.is_dir():
            raise UsageError(f"{what} {str(folder)!r} is not a folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        others = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if others:
            listed = ", ".join(repr(str(p.relative_to(folder))) for p in others[:3])
            raise UsageError(f"{what} {str(folder)!r} holds {len(others)} file(s) that are not images ({listed}"
                             f"{', ...' if len(others) > 3 else ''}); it may hold only "
                             f"{', '.join(sorted(IMAGE_SUFFIXES))} files")
        if not files:
            raise UsageError(f"{what} {str(folder)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for path in files:  # headers only: size and mode, so that a bad file is refused before any work
            try:
                with Image.open(path) as image:
                    mode, (width, height) = image.mode, image.size
            except Image.DecompressionBombError as error:
                raise UsageError(f"{what}: {str(path)!r} is too large an image to open ({error})") from None
            except (UnidentifiedImageError, OSError) as error:
                raise UsageError(f"{what}: {str(path)!r} is not a readable image ({error})") from None
            check_image_pixels(width, height, path, what)
            if width == 0 or height == 0:
                raise UsageError(f"{what}: {str(path)!r} is {width} x {height} pixels: an image has pixels")
            if mode != "RGB":
                raise UsageError(f"{what}: {str(path)!r} has mode {mode!r}, not RGB; FID's network takes RGB images "
                                 f"(convert the set to RGB first, e.g. PIL's image.convert('RGB'))")
        self.folder, self.files, self.what = folder, files, what
        self.description = f"{len(files)} images in {str(folder)!r}"

    def __len__(self) -> int:
        return len(self.files)

    def content_digest(self) -> str:
        digest = hashlib.sha256()
        for path in self.files:
            digest.update(str(path.relative_to(self.folder)).encode() + b"\0")
            digest.update(path.read_bytes())
        return digest.hexdigest()

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        batch: list[Tensor] = []
        for path in self.files:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
            image_tensor = torch.from_numpy(array.copy()).permute(2, 0, 1)
            if batch and (len(batch) == batch_size or batch[0].shape != image_tensor.shape):
                yield torch.stack(batch).float().div(255)
                batch = []
            batch.append(image_tensor)
        if batch:
            yield torch.stack(batch).float().div(255)


class ArrayImages(ImageSet):
    """uint8 images in an `.npz`: one array [N, H, W, 3] (or [N, 3, H, W]), as numpy.savez and the guided-diffusion
    samplers write them, or several arrays of one image each [H, W, 3] (numpy.savez of a list of images)."""

    def __init__(self, path: str | Path, what: str = "--samples"):
        path = Path(path)
        arrays = read_npz(path, what)
        if any(name in arrays for name in STAT_KEYS):
            raise UsageError(f"{what} {str(path)!r} holds FID statistics ({', '.join(STAT_KEYS)}), not images; "
                             f"statistics are accepted as --reference only")
        if len(arrays) == 1:
            (name, images), = arrays.items()
            if images.ndim == 3 and images.shape[-1] == 3:  # one RGB image
                images = images[None]
        elif "arr_0" in arrays and arrays["arr_0"].ndim == 4:  # guided-diffusion: images in arr_0, labels in arr_1
            name, images = "arr_0", arrays["arr_0"]
        else:
            shapes = {tuple(a.shape) for a in arrays.values()}
            if len(shapes) != 1:
                raise UsageError(f"{what} {str(path)!r}: its {len(arrays)} arrays have different shapes "
                                 f"({', '.join(str(s) for s in sorted(shapes)[:4])}); need one [N, H, W, 3] array "
                                 f"or one [H, W, 3] array per image, all of one shape")
            name, images = "arrays", np.stack(list(arrays.values()))
        if images.dtype != np.uint8:
            raise UsageError(f"{what} {str(path)!r}: array {name!r} is {images.dtype}; need uint8 images (0..255)")
        if images.ndim == 4 and images.shape[1] == 3 and images.shape[-1] != 3:
            images = images.transpose(0, 2, 3, 1)
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
            raise UsageError(f"{what} {str(path)!r}: array {name!r} has shape {tuple(images.shape)}; need "
                             f"[N, H, W, 3] RGB images with N >= 1 (a 1-channel set must be converted to RGB first)")
        self.path, self.images = path, images
        self.description = f"{len(images)} images {images.shape[1]}x{images.shape[2]} from {str(path)!r}"

    def __len__(self) -> int:
        return len(self.images)

    def content_digest(self) -> str:
        digest = hashlib.sha256(str(self.images.shape).encode())
        digest.update(np.ascontiguousarray(self.images).tobytes())
        return digest.hexdigest()

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        for lo in range(0, len(self.images), batch_size):
            yield torch.from_numpy(np.ascontiguousarray(self.images[lo : lo + batch_size])).permute(0, 3, 1, 2).float().div(255)


class DatasetImages(ImageSet):
    """The first `count` images of a data set in [-1, 1] (a data module's training images, as FID's reference)."""

    def __init__(self, dataset: Dataset, count: int, description: str):
        self.dataset, self.count = dataset, min(count, len(dataset))
        self.description = f"the first {self.count} images of {description}"

    def __len__(self) -> int:
        return self.count

    def _items(self, batch_size: int) -> Iterator[Tensor]:
        for lo in range(0, self.count, batch_size):
            items = [self.dataset[i] for i in range(lo, min(lo + batch_size, self.count))]
            yield torch.stack([item[0] if isinstance(item, (tuple, list)) else item for item in items]).add(1).div(2)

    def content_digest(self) -> str:  # the images as the network sees them, after the data module's transform
        digest = hashlib.sha256()
        for batch in self._items(256):
            digest.update(str(tuple(batch.shape)).encode())
            digest.update(batch.float().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        yield from self._items(batch_size)


def read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz (never pickled objects), or a plain error naming the file."""
    if not path.is_file():
        raise UsageError(f"{what} {str(path)!r} does not exist")
    check_npz_sizes(path, what)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise UsageError(f"{what} {str(path)!r} is not a readable .npz file ({error})") from None
    if not arrays:
        raise UsageError(f"{what} {str(path)!r} holds no arrays")
    return arrays


def is_statistics_file(path: str | Path) -> bool:
    """A reference given as statistics rather than images: the project's .pt, or an .npz with mu and sigma."""
    path = Path(path)
    if path.suffix == ".pt":
        return True
    if path.suffix == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return all(name in data.files for name in STAT_KEYS)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError):
            return False
    return False


def open_image_set(path: str | Path, what: str = "--samples") -> ImageSet:
    """A folder of images or an .npz of uint8 images, checked whole before any work."""
    path = Path(path)
    if path.is_dir():
        return FolderImages(path, what)
    if path.suffix == ".npz":
        return ArrayImages(path, what)
    if not path.exists():
        raise UsageError(f"{what} {str(path)!r} does not exist; give a folder of PNG / JPEG images or an .npz of "
                         f"uint8 images")
    raise UsageError(f"{what} {str(path)!r} is neither a folder of images nor an .npz of uint8 images")
