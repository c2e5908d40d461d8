"""The model and data module the scripts share: BoringModel-sized, logging a metric at every stage."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.demos.boring_classes import BoringModel, RandomDataset
from torch.utils.data import DataLoader


class TinyModel(BoringModel):
    """``BoringModel`` with arguments to configure and link, and a metric logged at every stage.

    Args:
        in_features: Width of the input.
        lr: Learning rate of SGD.
    """

    def __init__(self, in_features: int = 32, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(in_features, 2)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor]:
        loss = self.step(batch)
        self.log("train_loss", loss)
        return {"loss": loss}

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val_loss", self.step(batch))

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("test_loss", self.step(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class LazyModel(TinyModel):
    """A model whose layer is built in ``configure_model``, as for sharded training."""

    def __init__(self, in_features: int = 32, lr: float = 0.1) -> None:
        super().__init__(in_features, lr)
        del self.layer
        self.layer = None

    def configure_model(self) -> None:
        if self.layer is None:
            self.layer = torch.nn.Linear(self.hparams.in_features, 2)


class TinyData(LightningDataModule):
    """Random vectors, the same for a given seed.

    Args:
        size: Width of each vector.
        batch_size: Vectors per batch.
    """

    def __init__(self, size: int = 32, batch_size: int = 4) -> None:
        super().__init__()
        self.size = size
        self.batch_size = batch_size

    def _loader(self) -> DataLoader:
        return DataLoader(RandomDataset(self.size, 16), batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()
