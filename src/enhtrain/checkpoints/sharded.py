"""Sharded checkpoints: directories written by ``torch.distributed.checkpoint`` (one file per rank plus metadata).

``ModelParallelStrategy`` (FSDP2, tensor parallelism), ``FSDPStrategy`` with ``state_dict_type="sharded"`` and
``DeepSpeedStrategy`` save a checkpoint as a directory. A run keeps such a directory like a single file: it is
written under a temporary name inside ``checkpoints/`` and committed by one rename, listed in the manifest with
every file's size and checksum, verified, pruned through the path gate and loaded without running pickled code.

This module imports neither torch nor Lightning (``enhtrain ckpt`` uses it).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

from enhtrain._io import TMP_PREFIX, fsync_path
from enhtrain.errors import CheckpointError
from enhtrain.security import inside, is_plain_name

__all__ = [
    "DCP_METADATA",
    "DEEPSPEED_STATES",
    "META_FILE",
    "SHARDED_FORMATS",
    "check_resume",
    "check_world_size",
    "commit_directory",
    "expected_world_size",
    "is_sharded",
    "own_files",
    "read_dcp_metadata",
    "remove_checkpoint_path",
    "remove_leftovers",
    "strategy_writes_directory",
]

META_FILE = "meta.pt"
"""The file of a Lightning sharded checkpoint that holds everything but the tensors (``torch.save`` format)."""
DCP_METADATA = ".metadata"
"""The index that ``torch.distributed.checkpoint`` writes into a sharded checkpoint (a plain pickle)."""
SHARDED_FORMATS = (
    "ModelParallelStrategy (FSDP2, tensor parallel)",
    "FSDPStrategy with state_dict_type='sharded'",
)
"""The strategies whose sharded checkpoints ``enhtrain ckpt consolidate`` reads."""

_SHARD = re.compile(r"__(\d+)_\d+\.distcp")
# DeepSpeed's layout: `checkpoint/zero_pp_rank_<rank>_mp_rank_00_optim_states.pt` per rank, and the model
# states (with Lightning's own record) in `checkpoint/mp_rank_00_model_states.pt`, written by rank 0.
_DEEPSPEED_SHARD = re.compile(r"(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_\d+_optim_states\.pt")
DEEPSPEED_STATES = "checkpoint/mp_rank_00_model_states.pt"
"""A DeepSpeed checkpoint's model states file, which holds what ``meta.pt`` holds in Lightning's own layout."""
_ASIDE = re.compile(re.escape(TMP_PREFIX) + r"(.+)\.old-\d+")
# What a `.metadata` index refers to: torch's own metadata classes, tensor properties and paths. Anything else
# in it would be a pickle that runs code.
_DCP_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata", "MetadataIndex", "StorageMeta", "TensorProperties", "TensorStorageMetadata",
        "ChunkStorageMetadata", "BytesStorageMetadata", "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo", "_StoragePrefix"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath", "Path"},
    "collections": {"OrderedDict"},
}


def _class_names(obj: Any) -> set[str]:
    return {cls.__name__ for cls in type(obj).__mro__}


def strategy_writes_directory(strategy: Any) -> bool:
    """Whether ``strategy`` saves a checkpoint as a directory of shards rather than as one file."""
    names = _class_names(strategy)
    if "DeepSpeedStrategy" in names:
        return True
    if "ModelParallelStrategy" in names:
        return bool(getattr(strategy, "_save_distributed_checkpoint", True))
    if "FSDPStrategy" in names:
        return getattr(strategy, "_state_dict_type", "full") == "sharded"
    return False


def is_sharded(path: str | Path) -> bool:
    """Whether ``path`` is a sharded checkpoint: a real directory (not a link) holding checkpoint files."""
    path = Path(path)
    return path.is_dir() and not path.is_symlink()


def own_files(directory: str | Path, rank: int, world_size: int) -> list[str]:
    """The files of a just-written sharded checkpoint that ``rank`` hashes: its own shards.

    ``torch.distributed.checkpoint`` names each rank's shard ``__<rank>_<n>.distcp``. Rank 0 also takes every
    file that no rank names as its own (the index, ``meta.pt``, other layouts such as DeepSpeed's).

    Returns:
        Paths relative to ``directory``, in POSIX form.
    """
    directory = Path(directory)
    mine: list[str] = []
    for base, dirs, names in os.walk(directory, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            rel = (Path(base) / name).relative_to(directory).as_posix()
            match = _SHARD.fullmatch(name) if base == str(directory) else _DEEPSPEED_SHARD.fullmatch(name)
            owner = int(match.group(1)) if match else None
            if owner is not None and owner >= world_size:
                owner = None
            if owner == rank or (owner is None and rank == 0):
                mine.append(rel)
    return mine


def commit_directory(tmp: Path, final: Path, root: Path) -> None:
    """Rename a complete sharded checkpoint from its temporary name to ``final``, replacing what is there.

    The new directory's files and the directory itself are synced first. An old checkpoint under the final
    name is moved aside, the new one renamed into place, and the old one removed: a kill in between leaves a
    temporary name, which the run removes when it starts again.

    Args:
        tmp: The complete checkpoint under its temporary name.
        final: Its name in ``checkpoints/``.
        root: The ``checkpoints/`` folder (the path gate).
    """
    inside(tmp, root, what="checkpoint directory")
    inside(final, root, what="checkpoint directory")
    meta = tmp / META_FILE
    if meta.is_file():
        # Lightning writes it with a plain torch.save; the shards and the index are synced by torch.
        fsync_path(meta)
    fsync_path(tmp)
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        if _exchange(tmp, final):
            # The old checkpoint is now under the temporary name.
            fsync_path(root)
            shutil.rmtree(tmp, ignore_errors=True)
            return
        aside = root / f"{TMP_PREFIX}{final.name}.old-{os.getpid()}"
        os.replace(final, aside)
        os.replace(tmp, final)
        fsync_path(root)
        shutil.rmtree(aside, ignore_errors=True)
        return
    os.replace(tmp, final)
    fsync_path(root)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two directories in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``); ``False`` if unsupported.

    Replacing a directory otherwise takes two renames, between which a kill would leave no checkpoint under the
    final name.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    sys.audit("os.rename", str(first), str(second), -1, -1)
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0


def remove_checkpoint_path(directory: str | Path, name: str, *, sharded: bool) -> None:
    """Delete the checkpoint ``name`` of ``directory`` (a file or a sharded checkpoint's directory).

    The path passes the path gate first. A link is removed itself, never followed; a directory is first renamed
    to a temporary name, so that it is gone from ``checkpoints/`` at once, then removed without following any
    link inside it.

    Args:
        directory: The ``checkpoints/`` folder.
        name: The checkpoint's name.
        sharded: Whether the checkpoint is a directory; a directory where a file was saved is not deleted.

    Raises:
        PathEscapeError: If the checkpoint resolves outside ``directory``.
        OSError: If it cannot be deleted (``IsADirectoryError`` for a directory in place of a file).
    """
    directory = Path(directory)
    if not is_plain_name(name):
        raise CheckpointError(f"'{name}' is not a plain checkpoint name in '{directory}'")
    target = directory / name
    if target.is_symlink() or not target.is_dir():
        inside(target, directory, what="checkpoint file")
        target.unlink(missing_ok=True)
        return
    if not sharded:
        raise IsADirectoryError(21, "a directory where a checkpoint file was saved", str(target))
    inside(target, directory, what="checkpoint directory")
    doomed = directory / f"{TMP_PREFIX}{name}.del-{os.getpid()}"
    os.replace(target, doomed)
    fsync_path(directory)
    shutil.rmtree(doomed)


def remove_leftovers(directory: str | Path) -> None:
    """Remove the temporary files and directories a killed save or deletion left in ``checkpoints/``."""
    directory = Path(directory)
    for leftover in directory.glob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            inside(leftover, directory, what="temp file")
            old = _ASIDE.fullmatch(leftover.name)
            if old and leftover.is_dir() and not (directory / old.group(1)).exists():
                # Killed between moving the old checkpoint aside and renaming the new one into place.
                os.replace(leftover, directory / old.group(1))
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()


class _IndexUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in _DCP_CLASSES.get(module, ()):
            return super().find_class(module, name)
        if module == "torch":
            import torch

            if isinstance(getattr(torch, name, None), (torch.dtype, torch.layout, torch.memory_format)):
                return getattr(torch, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a checkpoint index")


def read_dcp_metadata(path: str | Path) -> Any:
    """Read the ``.metadata`` index of a sharded checkpoint, allowing only the classes torch writes into it.

    ``torch.distributed.checkpoint`` reads this file with a bare ``pickle.load``; checking it first means that
    a tampered index is refused before torch or Lightning ever opens it.

    Raises:
        CheckpointError: If the file names any other Python object (it could run code) or is corrupt.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint index '{path}' cannot be read ({err.strerror or err})") from None
    try:
        return _IndexUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        if "is not allowed" in str(err):
            raise CheckpointError(
                f"checkpoint index '{path}' needs pickled Python objects ({err}), which could run code when "
                "loaded; it was refused. Use a checkpoint written by torch.distributed.checkpoint"
            ) from None
        raise CheckpointError(f"checkpoint index '{path}' is truncated or corrupt; use another checkpoint") from None
    except Exception:
        raise CheckpointError(f"checkpoint index '{path}' is truncated or corrupt; use another checkpoint") from None


def check_world_size(entry: dict[str, Any] | None, path: str | Path, world_size: int | None) -> None:
    """Refuse to resume a sharded checkpoint with another number of processes than wrote it.

    Args:
        entry: The checkpoint's manifest entry (``world_size`` is read from it), or ``None``.
        path: The checkpoint, for the message.
        world_size: The number of processes of the run that resumes, or ``None`` when it is not known yet.

    Raises:
        CheckpointError: Naming both numbers and the fix.
    """
    saved = (entry or {}).get("world_size")
    if not isinstance(saved, int) or world_size is None or saved == world_size:
        return
    raise CheckpointError(
        f"sharded checkpoint '{path}' was written by {saved} processes, and this run has {world_size}; resume "
        f"with {saved} processes (trainer.devices x trainer.num_nodes), or consolidate it with `enhtrain ckpt "
        "consolidate` and start a new run from the file with --ckpt_path"
    )


def expected_world_size(config: dict[str, Any]) -> int | None:
    """The number of processes a training command will run, as far as it is known before Lightning starts.

    A launcher's ``WORLD_SIZE`` wins; otherwise ``trainer.devices`` (a count, a list or a comma-separated string
    of devices; ``auto`` on the CPU is one process) times ``trainer.num_nodes``.

    Returns:
        The count, or ``None`` when it depends on the devices found.
    """
    launched = os.environ.get("WORLD_SIZE", "")
    if launched.isdigit():
        return int(launched)
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    devices, nodes = trainer.get("devices", "auto"), trainer.get("num_nodes", 1)
    count: int | None = None
    if isinstance(devices, bool):
        count = None
    elif isinstance(devices, int) and devices > 0:
        count = devices
    elif isinstance(devices, list):
        count = len(devices)
    elif isinstance(devices, str) and devices.strip().isdigit() and int(devices) > 0:
        count = int(devices)
    elif isinstance(devices, str) and "," in devices:
        count = len([d for d in devices.split(",") if d.strip()])
    elif devices in ("auto", None) and trainer.get("accelerator") == "cpu":
        count = 1
    if count is None or not isinstance(nodes, int) or isinstance(nodes, bool) or nodes < 1:
        return None
    return count * nodes


def check_resume(checkpoint: str | Path, config: dict[str, Any]) -> None:
    """Refuse, before anything is written, to resume a sharded checkpoint with another number of processes.

    Args:
        checkpoint: The checkpoint to resume from (a file is left alone).
        config: The config of the command that resumes.

    Raises:
        CheckpointError: If the checkpoint's manifest entry records another world size than the command's.
    """
    from enhtrain.checkpoints.manifest import Manifest

    path = Path(checkpoint)
    if not path.is_dir():
        return
    try:
        check_world_size(Manifest(path.parent).entry(path.name), path, expected_world_size(config))
    except CheckpointError as err:
        raise CheckpointError(f"experiment.resume: {err}") from None
