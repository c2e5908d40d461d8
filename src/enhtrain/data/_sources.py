"""Loaders for the sources a :class:`~enhtrain.data.DatasetDataModule` can wrap."""

from __future__ import annotations

import csv
import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset

BUILTIN_DATASETS = ("digits", "diabetes")
FILE_SUFFIXES = (".pt", ".npz", ".csv")
_DEFAULT_FEATURES_KEY = "x"
_DEFAULT_TARGET_KEY = "y"
_DEFAULT_TARGET_COLUMN = "target"


def load_source(
    dataset: str,
    init_args: Mapping[str, Any] | None = None,
    features: str | Sequence[str] | None = None,
    target: str | None = None,
) -> tuple[Tensor, Tensor] | Dataset:
    """Load a dataset by name, file path or class path.

    Args:
        dataset: ``"digits"``, ``"diabetes"``, a ``.pt``/``.npz``/``.csv`` file, or the import path of a
            :class:`~torch.utils.data.Dataset` class.
        init_args: Keyword arguments for a dataset class.
        features: The key (``.pt``/``.npz``) or columns (``.csv``) holding the features.
        target: The key (``.pt``/``.npz``) or column (``.csv``) holding the target.

    Returns:
        A ``(features, targets)`` pair of tensors, or the instantiated map-style dataset.

    Raises:
        FileNotFoundError: If a file source does not exist.
        KeyError: If a key or column is missing.
        ValueError: If the source is not understood or an argument does not apply to it.
        ImportError: If a dataset class cannot be imported, or scikit-learn is missing for a built-in dataset.

    """
    if dataset.lower().endswith(FILE_SUFFIXES):
        _reject(init_args, "init_args", dataset, "only applies to dataset classes")
        return _load_file(Path(dataset), features, target)
    if dataset in BUILTIN_DATASETS:
        for name, value in (("init_args", init_args), ("features", features), ("target", target)):
            _reject(value, name, dataset, "does not apply to a built-in dataset")
        return _load_sklearn(dataset)
    if "." in dataset and not Path(dataset).exists():
        for name, value in (("features", features), ("target", target)):
            _reject(value, name, dataset, "only applies to file sources")
        return _instantiate(dataset, dict(init_args or {}))
    raise ValueError(
        f"Unknown dataset {dataset!r}: use one of {list(BUILTIN_DATASETS)}, a file ending in"
        f" {'/'.join(FILE_SUFFIXES)}, or the import path of a `torch.utils.data.Dataset` class"
        " such as 'package.module.ClassName'."
    )


def check_source_kind(dataset: str) -> None:
    """Raise what :func:`load_source` would for a ``dataset`` it cannot use, loading nothing.

    Raises:
        FileNotFoundError: If ``dataset`` names a file that does not exist.
        ValueError: If ``dataset`` is neither a built-in name, a data file nor an import path.
    """
    if dataset.lower().endswith(FILE_SUFFIXES):
        if not Path(dataset).is_file():
            raise FileNotFoundError(2, f"Dataset file not found: {dataset!r}", dataset)
        return
    if dataset in BUILTIN_DATASETS:
        return
    if "." in dataset and not Path(dataset).exists():
        return
    raise ValueError(
        f"Unknown dataset {dataset!r}: use one of {list(BUILTIN_DATASETS)}, a file ending in"
        f" {'/'.join(FILE_SUFFIXES)}, or the import path of a `torch.utils.data.Dataset` class"
        " such as 'package.module.ClassName'."
    )


def _reject(value: Any, name: str, dataset: str, why: str) -> None:
    if value:
        raise ValueError(f"`{name}` {why}; remove it for dataset {dataset!r}.")


def _load_sklearn(name: str) -> tuple[Tensor, Tensor]:
    if name == "digits":
        digits = _digits_file()
        if digits is not None:
            # What `sklearn.datasets.load_digits` reads, without importing scikit-learn (and pandas with it), which
            # takes longer than training a small model on the data.
            import numpy as np

            table = np.loadtxt(digits, delimiter=",")
            x = torch.as_tensor(table[:, :-1], dtype=torch.float32) / 16.0  # pixels are integers in [0, 16]
            return x, torch.as_tensor(table[:, -1].astype(int), dtype=torch.long)
    try:
        from sklearn import datasets
    except ImportError as err:
        raise ModuleNotFoundError(
            f"The built-in {name!r} dataset needs scikit-learn: pip install 'enhtrain[examples]'"
        ) from err
    if name == "digits":
        bunch = datasets.load_digits()
        # Pixels are integers in [0, 16].
        x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
        return x, torch.as_tensor(bunch.target, dtype=torch.long)
    bunch = datasets.load_diabetes()
    return torch.as_tensor(bunch.data, dtype=torch.float32), torch.as_tensor(
        bunch.target, dtype=torch.float32
    )


def _digits_file() -> Path | None:
    """scikit-learn's copy of the digits data set, found without importing scikit-learn; ``None`` if absent."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if candidate.is_file():
            return candidate
    return None


def _load_file(path: Path, features: str | Sequence[str] | None, target: str | None) -> tuple[Tensor, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"Dataset file not found: {str(path)!r} (resolved to {str(path.resolve())!r})."
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _load_csv(path, features, target)
    if features is not None and not isinstance(features, str):
        raise ValueError(f"`features` must be a single key for {path.name}, got {features!r}.")
    if suffix == ".pt":
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, (tuple, list)):
            if len(obj) != 2:
                raise ValueError(f"{str(path)!r} holds a sequence of {len(obj)} items; expected (x, y).")
            return _as_tensors(obj[0], obj[1])
        if not isinstance(obj, Mapping):
            raise ValueError(
                f"{str(path)!r} holds a {type(obj).__name__}; expected a dict with x/y or an (x, y) pair."
            )
        return _from_mapping(obj, features, target, path)

    import numpy as np

    with np.load(path, allow_pickle=False) as arrays:
        return _from_mapping(dict(arrays), features, target, path)


def _from_mapping(
    obj: Mapping[str, Any], features: str | None, target: str | None, path: Path
) -> tuple[Tensor, Tensor]:
    keys = (features or _DEFAULT_FEATURES_KEY, target or _DEFAULT_TARGET_KEY)
    for key in keys:
        if key not in obj:
            raise KeyError(f"Key {key!r} not found in {str(path)!r}; available keys: {sorted(obj)}.")
    return _as_tensors(obj[keys[0]], obj[keys[1]])


def _as_tensors(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if len(x) != len(y):
        raise ValueError(f"Features and targets differ in length: {len(x)} != {len(y)}.")
    return x, y


def _load_csv(path: Path, features: str | Sequence[str] | None, target: str | None) -> tuple[Tensor, Tensor]:
    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    if len(rows) < 2:
        raise ValueError(f"{str(path)!r} needs a header row and at least one data row.")
    header = [name.strip() for name in rows[0]]
    body = [row for row in rows[1:] if row]

    def column(name: str) -> int:
        if name not in header:
            raise KeyError(f"Column {name!r} not found in {str(path)!r}; available columns: {header}.")
        return header.index(name)

    if target is not None:
        target_index = column(target)
    else:
        target_index = (
            header.index(_DEFAULT_TARGET_COLUMN) if _DEFAULT_TARGET_COLUMN in header else len(header) - 1
        )
    if features is None:
        feature_indices = [i for i in range(len(header)) if i != target_index]
    else:
        feature_indices = [column(name) for name in ([features] if isinstance(features, str) else features)]
    if not feature_indices:
        raise ValueError(f"{str(path)!r} has no feature columns besides the target {header[target_index]!r}.")

    try:
        x = torch.tensor([[float(row[i]) for i in feature_indices] for row in body], dtype=torch.float32)
        target_cells = [row[target_index].strip() for row in body]
    except (ValueError, IndexError) as err:
        raise ValueError(f"{str(path)!r} must hold numeric cells in every selected column: {err}") from err
    try:
        # Integer literals are class labels; anything else is a regression target.
        y = torch.tensor([int(cell) for cell in target_cells], dtype=torch.long)
    except ValueError:
        try:
            y = torch.tensor([float(cell) for cell in target_cells], dtype=torch.float32)
        except ValueError as err:
            raise ValueError(
                f"Target column {header[target_index]!r} of {str(path)!r} must be numeric: {err}"
            ) from err
    return x, y


def _instantiate(class_path: str, init_args: dict[str, Any]) -> Dataset:
    module_name, _, class_name = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"Cannot import module {module_name!r} for dataset {class_path!r}: {err}") from err
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ImportError(f"Module {module_name!r} has no class {class_name!r} (dataset {class_path!r}).")
    if issubclass(cls, IterableDataset):
        raise ValueError(f"{class_path!r} is an IterableDataset; splitting needs a map-style dataset.")
    dataset = cls(**init_args)
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(f"{class_path!r} must be a map-style dataset with `__getitem__` and `__len__`.")
    return dataset
