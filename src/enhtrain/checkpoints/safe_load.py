"""Loading checkpoints without running code they carry, and only when they match their run's manifest."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from enhtrain.checkpoints.manifest import MANIFEST_NAME, Manifest
from enhtrain.errors import CheckpointError

__all__ = ["LIGHTNING_CKPT_ALIASES", "check_manifest", "cli_model_hparams", "load_meta", "safe_load"]

# Values of `ckpt_path` that Lightning resolves itself rather than naming a file.
LIGHTNING_CKPT_ALIASES = ("best", "last", "hpc", "registry")
"""Values of ``ckpt_path`` that Lightning resolves itself rather than naming a file."""

_TRUST_HINT = "it was refused. Pass --trust_checkpoint only if the file comes from a source you trust"


def check_manifest(path: str | Path) -> None:
    """Check a checkpoint against the ``manifest.json`` beside it, if that manifest lists it.

    Raises:
        CheckpointError: If the file's size or sha256 differs from its manifest entry.
    """
    path = Path(path)
    if not (path.parent / MANIFEST_NAME).is_file():
        return
    manifest = Manifest(path.parent)
    if manifest.entry(path.name) is None:
        return
    problem = manifest.verify(path.name)
    if problem is not None:
        raise CheckpointError(
            f"checkpoint '{path}' does not match {manifest.path}: {problem}; use another checkpoint "
            "(`enhtrain ckpt verify` checks them all)"
        )


def safe_load(
    path: str | Path, *, trust: bool = False, map_location: Any = "cpu", verify: bool = True, mmap: bool = False
) -> Any:
    """Load a checkpoint with ``weights_only=True`` unless ``trust``.

    A sharded checkpoint (a directory) loads as what it holds besides its tensors: its index is checked for
    pickled objects and its ``meta.pt`` loaded like a file (see :func:`enhtrain.checkpoints.sharded.load_meta`).

    Args:
        path: The checkpoint file, or a sharded checkpoint's directory.
        trust: Allow pickled Python objects (``weights_only=False``).
        map_location: Passed to :func:`torch.load`.
        verify: Check the file against its run's manifest first (see :func:`check_manifest`).
        mmap: Map the tensors' storage from the file instead of reading it (zip-format checkpoints only), to
            check a checkpoint cheaply.

    Raises:
        CheckpointError: If the file is missing, does not match its manifest, is truncated or corrupt, or needs
            pickled objects while not trusted; the message says to pass ``--trust_checkpoint`` only for a file
            from a trusted source.
    """
    import torch

    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        if verify:
            check_manifest(path)
        return load_meta(path, trust=trust, map_location=map_location)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' not found: check the path")
    if verify:
        check_manifest(path)
    try:
        return torch.load(
            path, map_location=map_location or "cpu", weights_only=not trust, mmap=mmap and zipfile.is_zipfile(path)
        )
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err).upper() or _is_pickle(path):
            raise CheckpointError(
                f"checkpoint '{path}' needs pickled Python objects, which could run code when loaded; " + _TRUST_HINT
            ) from err
        raise CheckpointError(
            f"checkpoint '{path}' is truncated or corrupt: {_describe_unreadable(path, err)}; use another checkpoint"
        ) from err
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(
            f"checkpoint '{path}' is truncated or corrupt: {_describe_unreadable(path, err)}; use another checkpoint"
        ) from err


def load_meta(directory: str | Path, *, trust: bool = False, map_location: Any = "cpu") -> dict[str, Any]:
    """Load what a sharded checkpoint holds besides its tensors, as safely as a single-file checkpoint.

    The index (``.metadata``) is checked by :func:`~enhtrain.checkpoints.sharded.read_dcp_metadata`, and
    ``meta.pt`` (the epoch, step, loops, callbacks, hyper-parameters and enhtrain's own record) is loaded with
    ``weights_only=True`` unless ``trust``. A DeepSpeed checkpoint has no ``meta.pt``: its model states file,
    which holds the same record, is loaded in its place.

    Raises:
        CheckpointError: If either file is missing, corrupt, or needs pickled objects while not trusted.
    """
    from enhtrain.checkpoints.sharded import DCP_METADATA, DEEPSPEED_STATES, META_FILE, read_dcp_metadata

    directory = Path(directory)
    if (directory / DCP_METADATA).exists():
        read_dcp_metadata(directory / DCP_METADATA)
    meta = directory / META_FILE
    if not meta.is_file() and (directory / DEEPSPEED_STATES).is_file():
        meta = directory / DEEPSPEED_STATES
    if not meta.is_file():
        raise CheckpointError(
            f"'{directory}' is not a sharded checkpoint that Lightning wrote (no {META_FILE} in it); give a "
            "checkpoint saved by ModelParallelStrategy or FSDPStrategy"
        )
    loaded = safe_load(meta, trust=trust, map_location=map_location, verify=False)
    if not isinstance(loaded, dict):
        raise CheckpointError(f"checkpoint metadata '{meta}' is not a Lightning checkpoint's (not a dict)")
    return loaded


def _describe_unreadable(path: Path, err: BaseException) -> str:
    """Say in words why :func:`torch.load` could not read ``path``, from the file's own layout.

    Returns:
        The reason, such as ``the file is empty`` or ``the file ends early: ...``.

    ``torch.save`` writes a zip archive holding a ``data.pkl`` record (older versions wrote a series of pickles);
    the exception torch raised is used only when the layout looks right.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as os_err:
        return f"it cannot be read ({os_err.strerror or os_err})"
    if size == 0:
        return "the file is empty (0 bytes)"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "its zip archive is damaged"
        if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            return "not a PyTorch checkpoint: a zip archive without the data.pkl record that torch.save writes"
        detail = " ".join(str(err).split())
        detail = detail.split(". ", 1)[0][:160] if len(detail) > 3 and not detail.isdigit() else ""
        return "the data inside its zip archive is damaged" + (f" ({detail})" if detail else "")
    if head.startswith(b"PK"):
        return "the file ends early: it stops before the last record of its zip archive"
    if head.startswith(b"\x80"):
        if _pickle_ends_early(path):
            return "the file ends early: it stops in the middle of its pickle data"
        return "its pickle data is damaged"
    return "not a PyTorch checkpoint: it is neither a zip archive nor a pickle"


def _pickle_ends_early(path: Path, most: int = 8) -> bool:
    """Whether the pickles at the start of ``path`` stop before their end (read opcode by opcode, never run)."""
    import pickletools

    with open(path, "rb") as handle:
        for _ in range(most):
            try:
                for _op in pickletools.genops(handle):
                    pass
            except ValueError as err:
                return "not enough data" in str(err) or "exhausted" in str(err)
            if not handle.read(1):
                return False
            handle.seek(-1, 1)
    return False


def _is_pickle(path: Path) -> bool:
    """Whether ``path`` is a well-formed pickle stream (checked opcode by opcode, without running it)."""
    import pickletools

    try:
        with open(path, "rb") as handle:
            for _ in pickletools.genops(handle):
                pass
    except Exception:
        return False
    return True


def require_lightning(checkpoint: Any, path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless ``checkpoint`` is a dict that Lightning wrote.

    For a sharded checkpoint (``path`` a directory), ``checkpoint`` is its ``meta.pt``: the tensors are in the
    shards, so only the Lightning version is required.
    """
    sharded = Path(path).is_dir()
    if not isinstance(checkpoint, dict) or ("state_dict" not in checkpoint and not sharded) or (
        "pytorch-lightning_version" not in checkpoint
    ):
        raise CheckpointError(
            f"checkpoint '{path}' is not a Lightning checkpoint (it has no state_dict and Lightning version); "
            "give a file written by Trainer.save_checkpoint"
        )
    from enhtrain.config.runtime import check_saved_state

    check_saved_state(checkpoint, path)


def cli_model_hparams(ckpt_path: str | Path | None, *, trust: bool = False) -> dict[str, Any] | None:
    """Read the model's hyper-parameters from ``ckpt_path`` as ``LightningCLI`` does, through :func:`safe_load`.

    ``LightningCLI`` reads them before the run starts, so a refused checkpoint stops the command before any run
    directory is created.

    Args:
        ckpt_path: The ``ckpt_path`` of the command; ``None`` and Lightning's aliases (``last``, ``best``,
            ``hpc``, ``registry``) are left to the Trainer.
        trust: Allow pickled Python objects.

    Returns:
        The model section to merge into the config (``class_path`` and ``dict_kwargs`` when the checkpoint
        records its class), or ``None`` when there is nothing to merge.

    Raises:
        CheckpointError: If the checkpoint is missing, corrupt, does not match its manifest or is unsafe.
    """
    if ckpt_path is None or str(ckpt_path) in LIGHTNING_CKPT_ALIASES or str(ckpt_path).startswith("registry:"):
        return None
    checkpoint = safe_load(ckpt_path, trust=trust)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint '{ckpt_path}' is not a Lightning checkpoint (not a dict)")
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    if not hparams:
        return None
    if "_class_path" in hparams:
        return {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
    return hparams
