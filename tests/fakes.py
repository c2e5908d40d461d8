"""Made-up files that several tests share: a run's checkpoints and the bytes of checkpoint-like files."""

from __future__ import annotations

import io
import zipfile

CHECKPOINTS = [
    ("epoch=0-step=10.ckpt", 10, 0.9),
    ("epoch=1-step=20.ckpt", 20, 0.4),
    ("epoch=2-step=30.ckpt", 30, 0.6),
    ("epoch=3-step=40.ckpt", 40, 0.5),
    ("last.ckpt", 40, 0.5),
]
"""A run's checkpoints as (file, step, val/loss): the best is ``epoch=1-step=20.ckpt``."""


def torch_bytes(obj: object) -> bytes:
    """What ``torch.save`` writes for ``obj``."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def zip_bytes() -> bytes:
    """A valid zip archive that is not a checkpoint."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint\n")
    return buffer.getvalue()
