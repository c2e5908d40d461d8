"""The global random states of torch, NumPy and Python, in a form that loads with ``weights_only=True``."""

from __future__ import annotations

import random
from typing import Any

import torch

__all__ = ["collect_rng_states", "restore_rng_states"]


def collect_rng_states() -> dict[str, Any]:
    """Return the global random states: torch's (CPU and CUDA), NumPy's and Python's.

    Every value is a tensor, a number, a string, ``None`` or a list of those, so the states survive a
    ``weights_only`` load.
    """
    version, state, gauss = random.getstate()
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": [version, list(state), gauss]}
    if torch.cuda.is_available():
        states["torch.cuda"] = list(torch.cuda.get_rng_state_all())
    try:
        import numpy as np
    except ImportError:
        return states
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states["numpy"] = [
        str(kind),
        torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        int(pos),
        int(has_gauss),
        float(cached),
    ]
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the global random states saved by :func:`collect_rng_states`; missing entries are left alone."""
    if isinstance(states.get("torch"), torch.Tensor):
        torch.set_rng_state(states["torch"])
    cuda = states.get("torch.cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    python = states.get("python")
    if python is not None:
        version, state, gauss = python
        random.setstate((version, tuple(state), gauss))
    numpy_state = states.get("numpy")
    if numpy_state is not None:
        try:
            import numpy as np
        except ImportError:
            return
        kind, keys, pos, has_gauss, cached = numpy_state
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
