"""Loading checkpoints without running code they carry."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from enhtrain.errors import CheckpointError

__all__ = ["safe_load"]


def safe_load(path: str | Path, *, trust: bool = False, map_location: Any = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True`` unless ``trust``.

    Raises:
        CheckpointError: If the file is missing, truncated or corrupt, or needs pickled objects while not
            trusted; the message says to pass ``--trust_checkpoint`` only for a file from a trusted source.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' not found: check the path")
    try:
        return torch.load(path, map_location=map_location or "cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Weights only" in str(err):
            raise CheckpointError(
                f"checkpoint '{path}' needs pickled Python objects, which could run code when loaded; "
                "it was refused. If you trust its source, pass --trust_checkpoint"
            ) from err
        raise CheckpointError(f"checkpoint '{path}' is corrupt: {err}") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        reason = " ".join(str(err).split())[:200]
        raise CheckpointError(
            f"checkpoint '{path}' is truncated or corrupt ({reason}); use another checkpoint"
        ) from err
