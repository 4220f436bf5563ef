"""LightningDataModules: where the data comes from. The names configs use (`class_path:
datamodules.DigitsDataModule`) load on first use (`qgfd_gen.lazy`)."""

from qgfd_gen.lazy import lazy_exports

_EXPORTS = {
    "DataUnavailableError": "qgfd_gen.errors",
    **{name: ".images" for name in ("CelebADataModule", "CIFAR10DataModule", "DigitsDataModule", "ImageDataModule",
                                    "ImageFolderDataModule")},
    "collate_graphs": ".graphs",
    **{name: ".molecules" for name in ("MoleculeDataModule", "QM9DataModule", "SmilesDataModule",
                                       "ZINC250kDataModule")},
    "MOSESDataModule": ".moses",
    "SyntheticGraphDataModule": ".synthetic_graphs",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
