"""A DataModule that wraps an existing dataset with seeded, reproducible train/val/test splits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, Subset, TensorDataset
from typing_extensions import override

from enhtrain.data._sources import check_source_kind, load_source

_STD_EPS = 1e-8


class DatasetDataModule(LightningDataModule):
    """Wrap a dataset and split it into train, validation and test sets with a seeded permutation.

    ``dataset`` is one of:

    - ``"digits"``: scikit-learn's bundled 8x8 digits (1797 images flattened to 64 features scaled to [0, 1],
      10 classes); ``"diabetes"``: scikit-learn's bundled regression set (10 features, float targets). Both
      need scikit-learn (``pip install 'enhtrain[examples]'``) and nothing is downloaded.
    - a ``.pt`` file (a dict of tensors, or an ``(x, y)`` pair), a ``.npz`` file (arrays ``x`` and ``y`` by
      default) or a ``.csv`` file with a header row (the target is the ``target`` column, or the last one).
    - the import path of a map-style :class:`~torch.utils.data.Dataset` class, built with ``init_args``.

    The same ``seed`` gives the same split in every process. Tensor sources are standardised with the mean and
    standard deviation of the training split only; integer targets become ``long`` class labels and float
    targets stay float (regression).

    Args:
        dataset: The name, file path or class path of the dataset.
        init_args: Keyword arguments for a dataset class.
        features: The key (``.pt``/``.npz``) or column name(s) (``.csv``) of the features; defaults to ``x``
            or every column but the target.
        target: The key (``.pt``/``.npz``) or column name (``.csv``) of the target; defaults to ``y``, or the
            ``target`` column, else the last column.
        val_fraction: Fraction of the rows in the validation split.
        test_fraction: Fraction of the rows in the test split.
        batch_size: Rows per batch of every dataloader.
        num_workers: Worker processes of every dataloader.
        seed: Seed of the split permutation and of the training shuffle.
        standardize: Whether to standardise the features of tensor sources.
        pin_memory: Passed to every dataloader.
        persistent_workers: Passed to every dataloader when ``num_workers > 0``.

    Raises:
        ValueError: If a fraction, ``batch_size`` or ``num_workers`` is out of range.

    """

    def __init__(
        self,
        dataset: str = "digits",
        init_args: dict[str, Any] | None = None,
        features: str | list[str] | None = None,
        target: str | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.1,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 42,
        standardize: bool = True,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= fraction < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {fraction!r}.")
        if val_fraction + test_fraction >= 1.0:
            raise ValueError(
                f"`val_fraction + test_fraction` must be below 1 to leave training rows, got"
                f" {val_fraction} + {test_fraction}."
            )
        check_source_kind(dataset)
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if num_workers < 0:
            raise ValueError(f"`num_workers` must be non-negative, got {num_workers!r}.")
        self.save_hyperparameters()
        self.train_dataset: Subset | None = None
        self.val_dataset: Subset | None = None
        self.test_dataset: Subset | None = None
        self._num_features: int | None = None
        self._num_classes: int | None = None

    @property
    def num_features(self) -> int:
        """Number of input features per sample (loads the dataset on first access)."""
        self._load()
        assert self._num_features is not None
        return self._num_features

    @property
    def num_classes(self) -> int | None:
        """Number of classes, or ``None`` for regression targets (loads the dataset on first access)."""
        self._load()
        return self._num_classes

    @property
    def task(self) -> Literal["classification", "regression"]:
        """``"classification"`` for integer targets, ``"regression"`` otherwise."""
        return "regression" if self.num_classes is None else "classification"

    @override
    def setup(self, stage: str) -> None:
        """Load the dataset and make the splits; later calls reuse them.

        Args:
            stage: The Trainer stage (``fit``, ``validate``, ``test`` or ``predict``).

        """
        self._load()

    @override
    def train_dataloader(self) -> DataLoader:
        """Return the shuffled training dataloader.

        The shuffle of epoch ``e`` is seeded with ``seed + e`` (the Trainer tells the sampler the epoch), so a
        run resumed from a checkpoint sees the same order in its next epoch as an uninterrupted run.
        """
        dataset = self._split("train")
        sampler = EpochSeededSampler(dataset, seed=self.hparams.seed)
        generator = torch.Generator().manual_seed(self.hparams.seed)
        return self._dataloader(dataset, sampler=sampler, generator=generator)

    @override
    def val_dataloader(self) -> DataLoader:
        """Return the validation dataloader."""
        return self._dataloader(self._split("val"))

    @override
    def test_dataloader(self) -> DataLoader:
        """Return the test dataloader."""
        return self._dataloader(self._split("test"))

    @override
    def predict_dataloader(self) -> DataLoader:
        """Return a dataloader over the test split."""
        return self._dataloader(self._split("test"))

    def _dataloader(
        self, dataset: Dataset, sampler: Sampler | None = None, generator: torch.Generator | None = None
    ) -> DataLoader:
        num_workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            generator=generator,
            num_workers=num_workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=self.hparams.persistent_workers and num_workers > 0,
        )

    def _split(self, name: str) -> Subset:
        self._load()
        return getattr(self, f"{name}_dataset")

    def _load(self) -> None:
        if self.train_dataset is not None:
            return
        hp = self.hparams
        source = load_source(hp.dataset, hp.init_args, hp.features, hp.target)
        size = len(source[0]) if isinstance(source, tuple) else len(source)
        train_idx, val_idx, test_idx = _split_indices(size, hp.val_fraction, hp.test_fraction, hp.seed)

        if isinstance(source, tuple):
            x, y = _prepare_tensors(*source)
            if hp.standardize:
                x = _standardize(x, train_idx)
            base: Dataset = TensorDataset(x, y)
            self._num_features = int(x[0].numel())
            self._num_classes = int(y.max()) + 1 if not y.is_floating_point() else None
        else:
            base = source
            self._num_features, self._num_classes = _describe(source)

        self.val_dataset = Subset(base, val_idx.tolist())
        self.test_dataset = Subset(base, test_idx.tolist())
        # Set last: it marks the module as loaded.
        self.train_dataset = Subset(base, train_idx.tolist())


class EpochSeededSampler(RandomSampler):
    """A random sampler whose order in epoch ``e`` depends only on ``seed + e``.

    Lightning calls :meth:`set_epoch` before each training epoch, as it does for a ``DistributedSampler``. The
    permutation is drawn when a pass starts, from a generator used for nothing else, so the order of an epoch
    does not depend on what ran before it. Without :meth:`set_epoch` the sampler starts at epoch 0 and its
    generator simply continues from one pass to the next.

    Args:
        data_source: The dataset to sample from.
        seed: The base seed.
    """

    def __init__(self, data_source: Dataset, seed: int) -> None:
        super().__init__(data_source, generator=torch.Generator())  # type: ignore[arg-type]
        self.seed = seed
        self.epoch = 0
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the generator with ``seed + epoch``.

        Args:
            epoch: The epoch about to start.
        """
        self.epoch = epoch
        assert self.generator is not None
        self.generator.manual_seed(self.seed + epoch)


def _split_indices(
    size: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Split ``range(size)`` into train, val and test indices with a permutation seeded by ``seed``."""
    num_val, num_test = round(size * val_fraction), round(size * test_fraction)
    if size - num_val - num_test < 1:
        raise ValueError(f"The dataset has {size} rows, too few to leave any for training after the splits.")
    permutation = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    test, val, train = permutation.split([num_test, num_val, size - num_val - num_test])
    return train, val, test


def _prepare_tensors(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x = x.float() if not x.is_floating_point() or x.dtype == torch.float64 else x
    y = y.float() if y.is_floating_point() else y.long()
    return x, y


def _standardize(x: Tensor, train_idx: Tensor) -> Tensor:
    train = x[train_idx]
    mean, std = train.mean(dim=0), train.std(dim=0)
    # Constant features are only centred: dividing by a near-zero spread would blow up unseen values.
    std = torch.where(std > _STD_EPS, std, torch.ones_like(std))
    return (x - mean) / std


def _describe(dataset: Dataset) -> tuple[int, int | None]:
    """Infer the feature count from the first sample and the class count from common dataset attributes."""
    sample = dataset[0]
    x = sample[0] if isinstance(sample, (tuple, list)) else sample
    num_features = int(torch.as_tensor(x).numel())
    num_classes = getattr(dataset, "num_classes", None)
    if num_classes is None and isinstance(getattr(dataset, "classes", None), Sequence):
        num_classes = len(dataset.classes)
    return num_features, num_classes
