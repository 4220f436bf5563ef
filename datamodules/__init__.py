"""LightningDataModules: where the data comes from."""

from qgfd_gen.errors import DataUnavailableError

from .images import (
    CelebADataModule,
    CIFAR10DataModule,
    DigitsDataModule,
    ImageDataModule,
    ImageFolderDataModule,
)

__all__ = [
    "CIFAR10DataModule",
    "CelebADataModule",
    "DataUnavailableError",
    "DigitsDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
]
from .graphs import collate_graphs  # noqa: E402
from .molecules import MoleculeDataModule, QM9DataModule, SmilesDataModule, ZINC250kDataModule  # noqa: E402
from .moses import MOSESDataModule  # noqa: E402
from .synthetic_graphs import SyntheticGraphDataModule  # noqa: E402

__all__ += ["MOSESDataModule", "MoleculeDataModule", "QM9DataModule", "SmilesDataModule", "SyntheticGraphDataModule",
            "ZINC250kDataModule", "collate_graphs"]
