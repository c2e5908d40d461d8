"""Tests of the dataset-wrapping DataModule, DatasetDataModule."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from enhtrain.data import DatasetDataModule

DIGITS_ROWS = 1797


def _indices(dm: DatasetDataModule) -> dict[str, list[int]]:
    dm.setup("fit")
    return {name: list(getattr(dm, f"{name}_dataset").indices) for name in ("train", "val", "test")}


def _base_tensors(dm: DatasetDataModule) -> tuple[torch.Tensor, ...]:
    dm.setup("fit")
    base = dm.train_dataset.dataset
    assert isinstance(base, TensorDataset)
    return base.tensors


def test_digits_loads_and_splits_per_fractions() -> None:
    dm = DatasetDataModule("digits", val_fraction=0.2, test_fraction=0.1)
    dm.setup("fit")
    sizes = {name: len(idx) for name, idx in _indices(dm).items()}

    assert sizes == {"val": round(DIGITS_ROWS * 0.2), "test": round(DIGITS_ROWS * 0.1), "train": 1258}
    all_indices = sorted(i for idx in _indices(dm).values() for i in idx)
    assert all_indices == list(range(DIGITS_ROWS))
    assert (dm.num_features, dm.num_classes, dm.task) == (64, 10, "classification")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 64)
    assert (x.dtype, y.dtype) == (torch.float32, torch.long)


def test_digits_pixels_are_scaled_without_standardisation() -> None:
    x, y = _base_tensors(DatasetDataModule("digits", standardize=False))
    assert x.min() == 0.0
    assert x.max() == 1.0
    assert set(y.unique().tolist()) == set(range(10))


def test_digits_are_scikit_learn_s_digits_read_without_importing_it() -> None:
    code = textwrap.dedent("""
        import json, sys
        import torch
        from enhtrain.data._sources import _load_sklearn
        x, y = _load_sklearn("digits")
        imported = "sklearn" in sys.modules
        from sklearn import datasets
        bunch = datasets.load_digits()
        print(json.dumps({"imported": imported, "x": bool((x.double() * 16 == torch.as_tensor(bunch.data)).all()),
                          "y": y.tolist() == bunch.target.tolist(), "dtypes": [str(x.dtype), str(y.dtype)]}))
    """)
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out == {"imported": False, "x": True, "y": True, "dtypes": ["torch.float32", "torch.int64"]}


def test_standardisation_uses_train_split_only() -> None:
    dm = DatasetDataModule("digits")
    x, _ = _base_tensors(dm)
    train, val = x[dm.train_dataset.indices], x[dm.val_dataset.indices]
    varying = train.std(dim=0) > 0
    torch.testing.assert_close(train.mean(dim=0), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.std(dim=0)[varying], torch.ones(int(varying.sum())), atol=1e-4, rtol=0)
    assert val.mean(dim=0).abs().max() > 1e-3
    assert torch.isfinite(x).all()


def test_same_seed_same_split_different_seed_different_split() -> None:
    first = _indices(DatasetDataModule("digits", seed=7))
    assert _indices(DatasetDataModule("digits", seed=7)) == first
    assert _indices(DatasetDataModule("digits", seed=8)) != first


def test_split_is_reproducible_across_processes() -> None:
    code = textwrap.dedent(
        """
        import json
        from enhtrain.data import DatasetDataModule
        dm = DatasetDataModule("digits", seed=3)
        dm.setup("fit")
        print(json.dumps({n: list(getattr(dm, n + "_dataset").indices) for n in ("train", "val", "test")}))
        """
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == _indices(DatasetDataModule("digits", seed=3))


def test_train_shuffle_is_seeded_and_eval_loaders_are_ordered() -> None:
    def first_batch(seed: int) -> torch.Tensor:
        return next(iter(DatasetDataModule("digits", seed=seed).train_dataloader()))[1]

    torch.testing.assert_close(first_batch(1), first_batch(1))
    dm = DatasetDataModule("digits")
    _, y = _base_tensors(dm)
    val_targets = torch.cat([batch[1] for batch in dm.val_dataloader()])
    torch.testing.assert_close(val_targets, y[dm.val_dataset.indices])
    test_targets = torch.cat([batch[1] for batch in dm.predict_dataloader()])
    torch.testing.assert_close(test_targets, y[dm.test_dataset.indices])


def test_diabetes_is_regression() -> None:
    dm = DatasetDataModule("diabetes")
    assert (dm.num_features, dm.num_classes, dm.task) == (10, None, "regression")
    _, y = next(iter(dm.val_dataloader()))
    assert y.dtype == torch.float32


def test_missing_sklearn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=r"pip install 'enhtrain\[examples\]'"):
        DatasetDataModule("digits").setup("fit")


@pytest.mark.parametrize("layout", ["dict", "tuple", "custom-keys"])
def test_pt_source_round_trips(tmp_path: Path, layout: str) -> None:
    x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    path = tmp_path / "data.pt"
    keys: dict[str, str] = {}
    if layout == "dict":
        torch.save({"x": x, "y": y}, path)
    elif layout == "tuple":
        torch.save((x, y), path)
    else:
        torch.save({"inputs": x, "labels": y}, path)
        keys = {"features": "inputs", "target": "labels"}
    dm = DatasetDataModule(str(path), standardize=False, **keys)

    got_x, got_y = _base_tensors(dm)
    torch.testing.assert_close(got_x, x)
    torch.testing.assert_close(got_y, y)
    assert (dm.num_features, dm.num_classes) == (4, 3)


def test_npz_source_round_trips(tmp_path: Path) -> None:
    x, y = np.random.default_rng(0).normal(size=(25, 3)), np.linspace(0.0, 1.0, 25)
    np.savez(tmp_path / "data.npz", features=x, value=y)
    dm = DatasetDataModule(str(tmp_path / "data.npz"), features="features", target="value", standardize=False)

    got_x, got_y = _base_tensors(dm)
    torch.testing.assert_close(got_x, torch.as_tensor(x, dtype=torch.float32))
    torch.testing.assert_close(got_y, torch.as_tensor(y, dtype=torch.float32))
    assert dm.task == "regression"


def test_csv_source_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    rows = [
        (0.5, -1.0, 2.0, 1),
        (1.5, 0.0, 3.0, 0),
        (2.5, 1.0, 4.0, 2),
        (3.5, 2.0, 5.0, 1),
        (4.5, 3.0, 6.0, 0),
    ]
    path.write_text("a,b,c,target\n" + "".join(f"{a},{b},{c},{t}\n" for a, b, c, t in rows))

    dm = DatasetDataModule(str(path), val_fraction=0.2, test_fraction=0.2, batch_size=2, standardize=False)
    x, y = _base_tensors(dm)
    torch.testing.assert_close(x, torch.tensor([r[:3] for r in rows], dtype=torch.float32))
    torch.testing.assert_close(y, torch.tensor([r[3] for r in rows]))
    assert (dm.num_features, dm.num_classes) == (3, 3)

    selected = DatasetDataModule(str(path), features=["c", "a"], target="b", standardize=False)
    x, y = _base_tensors(selected)
    torch.testing.assert_close(x, torch.tensor([(r[2], r[0]) for r in rows], dtype=torch.float32))
    torch.testing.assert_close(y, torch.tensor([r[1] for r in rows], dtype=torch.float32))
    assert selected.task == "regression"


def test_csv_target_defaults_to_last_column(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("p,q,label\n1,2,0\n3,4,1\n5,6,1\n7,8,0\n")
    x, y = _base_tensors(
        DatasetDataModule(str(path), val_fraction=0.25, test_fraction=0.0, standardize=False)
    )
    torch.testing.assert_close(y, torch.tensor([0, 1, 1, 0]))
    assert x.shape == (4, 2)


def test_relative_path_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.save((torch.randn(10, 2), torch.arange(10) % 2), tmp_path / "data.pt")
    monkeypatch.chdir(tmp_path)
    assert DatasetDataModule("data.pt").num_features == 2


def test_class_path_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "enhtrain_test_tiny_dataset.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch.utils.data import Dataset

            class TinyDataset(Dataset):
                num_classes = 2

                def __init__(self, size, width=3):
                    self.x = torch.arange(size * width, dtype=torch.float32).reshape(size, width)
                    self.y = torch.arange(size) % 2

                def __len__(self):
                    return len(self.x)

                def __getitem__(self, index):
                    return self.x[index], self.y[index]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    dm = DatasetDataModule(
        "enhtrain_test_tiny_dataset.TinyDataset",
        init_args={"size": 20, "width": 5},
        val_fraction=0.25,
        batch_size=4,
    )
    dm.setup("fit")

    assert (dm.num_features, dm.num_classes) == (5, 2)
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (13, 5, 2)
    x, y = next(iter(dm.val_dataloader()))
    index = dm.val_dataset.indices[0]
    torch.testing.assert_close(x[0], torch.arange(index * 5, index * 5 + 5, dtype=torch.float32))
    assert y[0] == index % 2


def test_bad_class_path_is_clear() -> None:
    with pytest.raises(ImportError, match="no_such_module_xyz"):
        DatasetDataModule("no_such_module_xyz.Data").setup("fit")
    with pytest.raises(ImportError, match="NoSuchDataset"):
        DatasetDataModule("torch.utils.data.NoSuchDataset").setup("fit")


def test_num_workers_and_loader_options_are_passed() -> None:
    dm = DatasetDataModule("digits", num_workers=2, persistent_workers=True, pin_memory=True)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader(), dm.predict_dataloader()):
        assert loader.num_workers == 2
        assert loader.persistent_workers
        assert loader.pin_memory
    # Persistent workers need worker processes.
    assert not DatasetDataModule("digits", persistent_workers=True).val_dataloader().persistent_workers


def test_setup_is_idempotent() -> None:
    dm = DatasetDataModule("digits")
    dm.setup("fit")
    train = dm.train_dataset
    dm.setup("test")
    assert dm.train_dataset is train


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        DatasetDataModule(str(missing)).setup("fit")


def test_bad_column_and_key_name_what_exists(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b,target\n1,2,0\n3,4,1\n5,6,1\n7,8,0\n")
    with pytest.raises(KeyError, match=r"'missing'.*\['a', 'b', 'target'\]"):
        DatasetDataModule(str(tmp_path / "data.csv"), target="missing").setup("fit")
    with pytest.raises(KeyError, match=r"'zz'.*\['a', 'b', 'target'\]"):
        DatasetDataModule(str(tmp_path / "data.csv"), features=["a", "zz"]).setup("fit")

    torch.save({"inputs": torch.zeros(4, 2), "y": torch.zeros(4)}, tmp_path / "data.pt")
    with pytest.raises(KeyError, match=r"'x'.*\['inputs', 'y'\]"):
        DatasetDataModule(str(tmp_path / "data.pt")).setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": 0.6, "test_fraction": 0.4}, "val_fraction \\+ test_fraction"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"dataset": "imagenet"}, "Unknown dataset 'imagenet'"),
        ({"dataset": "digits", "target": "y"}, "target"),
    ],
)
def test_bad_arguments_are_clear(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DatasetDataModule(**kwargs).setup("fit")


def test_digits_trains_with_the_reference_model() -> None:
    import lightning.pytorch as pl

    from enhtrain.models import MLPClassifier

    pl.seed_everything(0, verbose=False)
    dm = DatasetDataModule("digits", batch_size=32)
    model = MLPClassifier(input_dim=dm.num_features, num_classes=dm.num_classes, lr=2e-3, micro_batch_size=16)
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, dm)
    assert trainer.callback_metrics["val/acc"] > 0.9
