"""Shared helpers: subprocess runs, statistics, machine description and the synthetic data set."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"

_CLEARED_ENV = (
    "ENHTRAIN_RUN_DIR",
    "ENHTRAIN_ENV",
    "ENHTRAIN_DEBUG",
    "ENHTRAIN_PLAIN_PROGRESS",
    "ENHTRAIN_LOAD_PLUGINS",
    "ENHTRAIN_DISABLED_PLUGINS",
    "ENHTRAIN_DISABLE_PLUGIN_AUTOLOAD",
)


@dataclass(frozen=True)
class Settings:
    """How thoroughly to measure.

    Attributes:
        mode: ``smoke``, ``quick`` or ``full``.
        reps: Interleaved repetitions of the training comparison.
        small_steps: Training steps of the small MLP.
        large_steps: Training steps of the large MLP.
        warmup: Steps left out at the start of every training run.
        startup_reps: Repetitions of each start-up measurement.
        threads: Torch intra-op threads of every training process.
        variants: Training variants to run (``None``: all).
        models: Models to run (``None``: both).
    """

    mode: str
    reps: int
    small_steps: int
    large_steps: int
    warmup: int
    startup_reps: int
    threads: int = 1
    variants: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None


@functools.cache
def compile_sources() -> None:
    """Write the bytecode cache of the repository's own modules (enhtrain, its example plugin, the benchmarks).

    Installing a package writes it; an editable install writes it on first import, unless
    ``PYTHONDONTWRITEBYTECODE`` is set (as on the project's machines), where every process would compile each
    enhtrain module again (0.1 to 0.2 s a start) and the benchmarks would measure that instead of enhtrain.
    """
    import compileall

    for folder in (REPO / "src", REPO / "plugins" / "enhtrain-example" / "src", REPO / "benchmarks"):
        if folder.is_dir():
            compileall.compile_dir(str(folder), quiet=2)


def subprocess_env(threads: int | None = None, extra_path: Sequence[str] = ()) -> dict[str, str]:
    """Return the environment of a measured subprocess.

    The repository root is put on ``PYTHONPATH`` (so ``benchmarks`` imports from any directory), enhtrain's
    own environment variables are cleared, and torch's thread count is pinned when ``threads`` is given. The
    repository's bytecode cache is written first (:func:`compile_sources`).

    Args:
        threads: Intra-op threads (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``); ``None`` leaves them unset.
        extra_path: Directories put on ``PYTHONPATH`` before the repository root.
    """
    compile_sources()
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED_ENV}
    paths = [*extra_path, str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


@dataclass
class ProcessResult:
    """The outcome of one measured subprocess.

    Attributes:
        returncode: The exit status.
        wall_s: Wall time from just before the process was started until it exited.
        start_wall: ``time.time()`` just before the process was started.
        stdout: What it wrote to standard output (captured to a file, so not a terminal).
        stderr: What it wrote to standard error.
    """

    returncode: int
    wall_s: float
    start_wall: float
    stdout: str
    stderr: str

    def check(self, what: str) -> ProcessResult:
        """Raise ``RuntimeError`` with the tail of the output if the process failed."""
        if self.returncode != 0:
            tail = "\n".join((self.stdout + "\n" + self.stderr).strip().splitlines()[-25:])
            raise RuntimeError(f"{what} failed with exit status {self.returncode}:\n{tail}")
        return self


def run_process(
    args: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str],
    timeout: float = 900.0,
) -> ProcessResult:
    """Run a command with stdout and stderr captured to files, as in CI, and time it.

    Args:
        args: The command.
        cwd: The working directory.
        env: The environment.
        timeout: Seconds before the process is killed.
    """
    cwd = Path(cwd)
    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = cwd / "_stdout.txt", cwd / "_stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start_wall = time.time()
        start = time.perf_counter()
        proc = subprocess.run(
            list(args), cwd=cwd, env=dict(env), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            timeout=timeout, check=False,
        )
        wall = time.perf_counter() - start
    return ProcessResult(
        proc.returncode,
        wall,
        start_wall,
        out_path.read_text(encoding="utf-8", errors="replace"),
        err_path.read_text(encoding="utf-8", errors="replace"),
    )


def python() -> str:
    """The interpreter running the benchmarks (the project's virtual environment)."""
    return sys.executable


def median(values: Iterable[float]) -> float | None:
    """Median of the values, ``None`` when there are none."""
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else None


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, mean, minimum, maximum and count of the values."""
    data = [v for v in values if v is not None]
    if not data:
        return {"median": None, "mean": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(data),
        "mean": statistics.fmean(data),
        "min": min(data),
        "max": max(data),
        "n": len(data),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the denominator is zero."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def rotate(items: Sequence[str], rep: int) -> list[str]:
    """Rotate the order by ``rep`` so that no variant always runs first (ABCDE, BCDEA, ...)."""
    shift = rep % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, when the platform has them."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def busy_processes(limit: int = 5) -> list[dict[str, Any]]:
    """The processes using the most CPU right now (other than this one), to describe the machine's load."""
    try:
        import psutil
    except ImportError:
        return []
    procs = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            proc.cpu_percent(None)
    time.sleep(0.5)
    rows = []
    for proc in procs:
        try:
            cpu = proc.cpu_percent(None)
        except (psutil.Error, OSError):
            continue
        if proc.pid != os.getpid() and cpu > 1.0:
            cmd = " ".join((proc.info.get("cmdline") or [proc.info.get("name") or ""])[:4])
            rows.append({"pid": proc.pid, "cpu_percent": round(cpu, 1), "command": cmd[:120]})
    rows.sort(key=lambda r: -r["cpu_percent"])
    return rows[:limit]


def machine_info() -> dict[str, Any]:
    """Describe the machine and software the numbers come from."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for dist in ("enhtrain", "lightning", "torch", "jsonargparse", "tensorboard"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gb = None
    try:
        import psutil

        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "memory_gb": memory_gb,
        "gpu": _gpus() or "none (every number is CPU only)",
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _gpus() -> str | None:
    """The NVIDIA GPUs ``nvidia-smi`` lists, or ``None``."""
    import shutil

    if shutil.which("nvidia-smi") is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=20, check=True)
        names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        return ", ".join(names) or None
    return None


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, creating the parent directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def print_json(data: Any, out: Path | None, name: str) -> None:
    """Print ``data`` as indented JSON and, when ``out`` is given, write it to ``out / name`` as well."""
    print(json.dumps(data, indent=2))
    if out:
        write_json(out / name, data)


def make_dataset(path: Path, rows: int, features: int = 64, classes: int = 10, seed: int = 0) -> Path:
    """Write a learnable synthetic classification set (arrays ``x`` and ``y``) to a ``.npz`` file.

    The labels are the argmax of a fixed random linear map of the features, so the loss falls during training.
    Only numpy is needed, so the harness itself never imports torch.

    Args:
        path: Where to write it (a ``.npz`` file).
        rows: Number of samples.
        features: Features per sample.
        classes: Number of classes.
        seed: Seed of the features and of the linear map.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    weights = rng.standard_normal((features, classes), dtype=np.float32)
    y = (x @ weights).argmax(axis=1).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, x=x, y=y)
    return path


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a number for a table; ``-`` when missing."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def fmt_ms(seconds: float | None) -> str:
    """Format seconds as milliseconds for a table."""
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"
