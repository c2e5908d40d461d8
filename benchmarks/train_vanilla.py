"""Variant 1: the same model, data and optimisation as a plain PyTorch loop, the limit to compare against.

``python -m benchmarks.train_vanilla SPEC.json OUT.json``

The batches come from the same :class:`~enhtrain.data.DatasetDataModule` (same split, same seeded shuffle)
and the network is built layer by layer exactly as :class:`~enhtrain.models.MLPClassifier` builds it after
the same seed, so the weights, batches and final loss equal those of the Lightning variants.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.records import StepRecord


def build_network(model: dict[str, Any]) -> nn.Sequential:
    """Build the layers of ``MLPClassifier(**model)`` in the same order, so the same seed gives the same weights.

    Args:
        model: The model's init arguments.
    """
    width = int(model.get("input_dim", 64))
    layers: list[nn.Module] = []
    for hidden in model.get("hidden_dims", [128, 64]):
        layers += [nn.Linear(width, int(hidden)), nn.ReLU()]
        width = int(hidden)
    layers.append(nn.Linear(width, int(model.get("num_classes", 10))))
    return nn.Sequential(*layers)


def train(spec: dict[str, Any], output: str) -> None:
    """Train for ``spec["max_steps"]`` steps, recording each step's start and end.

    Args:
        spec: The run's description (see :mod:`benchmarks.training`).
        output: The JSON file of the step record.
    """
    from enhtrain.data import DatasetDataModule

    seed = spec["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    data = DatasetDataModule(**spec["data"])
    data.setup("fit")
    loader = data.train_dataloader()
    model_args = spec["model"]
    net = build_network(model_args)
    net.train()
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=model_args.get("lr", 1e-3), weight_decay=model_args.get("weight_decay", 0.0)
    )
    micro = model_args.get("micro_batch_size")
    record = StepRecord(
        output, spec["warmup"], spec.get("track_memory", False), spec.get("count_from"), spec.get("count_steps", 0)
    )
    steps, batch_idx = 0, 0
    iterator = iter(loader)
    total = torch.zeros(())
    while steps < spec["max_steps"]:
        try:
            x, y = next(iterator)
        except StopIteration:
            iterator, batch_idx = iter(loader), 0
            continue
        record.start(batch_idx)
        rows = x.shape[0]
        total = torch.zeros(())
        for micro_x, micro_y in zip(x.split(micro or rows), y.split(micro or rows), strict=True):
            logits = net(micro_x.flatten(1).to(torch.float32))
            loss = F.cross_entropy(logits, micro_y.long()) * (micro_x.shape[0] / rows)
            loss.backward()
            total += loss.detach()
        optimizer.step()
        optimizer.zero_grad()
        record.end()
        steps += 1
        batch_idx += 1
    record.extra["global_step"] = steps
    record.write(float(total))


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``SPEC.json OUT.json``."""
    args = sys.argv[1:] if argv is None else argv
    with open(args[0], encoding="utf-8") as handle:
        spec = json.load(handle)
    train(spec, args[1])


if __name__ == "__main__":
    main()
