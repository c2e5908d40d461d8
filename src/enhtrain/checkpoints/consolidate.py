"""One file from a sharded checkpoint, with the converters torch and Lightning ship."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enhtrain._io import atomic_open
from enhtrain.checkpoints.atomic_io import _HashingWriter
from enhtrain.checkpoints.safe_load import load_meta

__all__ = ["consolidate", "load_consolidated"]


def load_consolidated(source: str | Path) -> dict[str, Any]:
    """Load a sharded checkpoint into one Lightning checkpoint dictionary, in memory.

    The index and ``meta.pt`` are checked first as a single file would be (no pickled code runs); the shards
    are then read by ``torch.distributed.checkpoint`` through Lightning's consolidation
    (``lightning.fabric.utilities.load._load_distributed_checkpoint``), and the model and optimizer states put
    under the keys a single-file checkpoint has (``lightning.pytorch.utilities.consolidate_checkpoint``).

    Args:
        source: The sharded checkpoint's directory.

    Returns:
        The checkpoint: ``state_dict``, ``optimizer_states`` and everything ``meta.pt`` holds.

    Raises:
        CheckpointError: If the index or ``meta.pt`` is missing, corrupt or needs pickled objects.
    """
    from lightning.fabric.utilities.load import _load_distributed_checkpoint
    from lightning.pytorch.utilities.consolidate_checkpoint import _format_checkpoint

    source = Path(source)
    load_meta(source)
    checkpoint = _load_distributed_checkpoint(source)
    if "model" not in checkpoint and "state_dict" in checkpoint:
        # ModelParallelStrategy stores the model under `state_dict`, FSDPStrategy under `model`.
        checkpoint["model"] = checkpoint.pop("state_dict")
    checkpoint = _format_checkpoint(checkpoint)
    provenance = checkpoint.get("enhtrain")
    if isinstance(provenance, dict):
        checkpoint["enhtrain"] = {**provenance, "consolidated_from": source.name}
    return checkpoint


def consolidate(source: str | Path, output: str | Path) -> tuple[str, int]:
    """Write a sharded checkpoint as one file that ``torch.load(weights_only=True)`` loads.

    The file is written to a temporary name and renamed into place, so that it appears complete or not at all.

    Args:
        source: The sharded checkpoint's directory.
        output: The file to write.

    Returns:
        The file's sha256 and size, computed while it was written.

    Raises:
        CheckpointError: See :func:`load_consolidated`.
    """
    import torch

    checkpoint = load_consolidated(source)
    with atomic_open(output, "wb") as handle:
        writer = _HashingWriter(handle)
        torch.save(checkpoint, writer)  # type: ignore[arg-type]
    return writer.digest.hexdigest(), writer.size
