"""Reference LightningDataModules: plain Lightning, usable without the rest of enhtrain."""

from enhtrain.data.dataset_datamodule import DatasetDataModule

__all__ = ["DatasetDataModule"]
