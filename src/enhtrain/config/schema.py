"""The ``experiment`` section of a config, as a Pydantic model.

Validated before anything is instantiated; extra keys are errors. These are also the code defaults, the
lowest config layer, of ``python -m enhtrain``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from enhtrain.errors import quote

__all__ = ["CheckpointConfig", "ExperimentConfig", "NamedComponent", "ProfilerConfig", "infer_mode"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # \Z: "$" would let a trailing newline in
# The longest file name most file systems take (NAME_MAX), in bytes; a run's name and version are folder names.
_NAME_MAX = 255
_TEMPLATE_FIELD = re.compile(r"\{[^{}]*\}")
_MIN_HINTS = ("loss", "err", "mse", "mae", "rmse", "perplexity", "nll")
_MAX_HINTS = ("acc", "f1", "auc", "precision", "recall", "iou", "r2", "bleu", "map")


def infer_mode(monitor: str) -> Literal["min", "max"] | None:
    """Guess whether a monitored metric is minimised or maximised from its name."""
    leaf = monitor.rsplit("/", 1)[-1].lower()
    if any(h in leaf for h in _MIN_HINTS):
        return "min"
    if any(h in leaf for h in _MAX_HINTS):
        return "max"
    return None


def _check_length(value: str, what: str) -> None:
    size = len(value.encode("utf-8"))
    if size > _NAME_MAX:
        raise ValueError(
            f"the {what} is {size} bytes long, but it names a folder and file systems allow at most {_NAME_MAX}: "
            "use a shorter one"
        )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CheckpointConfig(_Strict):
    """How checkpoints are saved under the run's ``checkpoints/`` folder.

    Attributes:
        monitor: The metric that ranks checkpoints (``val/loss``); ``None`` keeps the newest ones.
        mode: ``min`` or ``max``; inferred from the metric's name when left out.
        save_top_k: How many of the best checkpoints to keep (``-1`` keeps all).
        keep_last: Also keep the newest N checkpoints, whatever their score (``None`` keeps only the best).
        save_last: Whether ``last.ckpt`` always points at the newest checkpoint.
        every_n_epochs: Save every N epochs.
        every_n_train_steps: Save every N training steps instead of at epoch ends.
        filename: Lightning's filename pattern.
    """

    monitor: str | None = None
    mode: Literal["min", "max"] | None = None
    save_top_k: int = Field(default=1, ge=-1)
    keep_last: int | None = Field(default=None, ge=0)
    save_last: bool = True
    every_n_epochs: int | None = Field(default=None, ge=1)
    every_n_train_steps: int | None = Field(default=None, ge=1)
    filename: str = "epoch={epoch}-step={step}"

    @field_validator("filename")
    @classmethod
    def _check_filename(cls, value: str) -> str:
        literal = _TEMPLATE_FIELD.sub("", value)
        if not value.strip() or "/" in literal or "\\" in literal or literal.startswith(".") or "\x00" in value:
            raise ValueError(
                f"{quote(value)} is not a plain file name pattern: checkpoints are saved in the run's checkpoints/ "
                "folder, so use a name such as 'epoch={epoch}-step={step}' without '/', '\\' or a leading '.'"
            )
        return value

    @model_validator(mode="after")
    def _check_mode(self) -> CheckpointConfig:
        if self.mode is not None and self.monitor is None:
            raise ValueError("'mode' is set but 'monitor' is not: name the metric to monitor, e.g. monitor: val/loss")
        if self.monitor is not None and self.mode is None:
            inferred = infer_mode(self.monitor)
            if inferred is None:
                raise ValueError(
                    f"cannot tell whether {quote(self.monitor)} should be minimised or maximised: set mode: min or max"
                )
            self.mode = inferred
        if self.every_n_epochs is not None and self.every_n_train_steps is not None:
            raise ValueError("set only one of 'every_n_epochs' and 'every_n_train_steps'")
        return self


class NamedComponent(BaseModel):
    """A component chosen by name, with its options as extra keys.

    Attributes:
        name: The component's name.
    """

    model_config = ConfigDict(extra="allow")

    name: str

    def options(self) -> dict[str, Any]:
        """Return the options for the component's constructor: every key but ``name``."""
        return dict(self.model_extra or {})


class ProfilerConfig(NamedComponent):
    """A profiler chosen by registry name, with its options as extra keys.

    Attributes:
        name: The registry name (``simple``, ``advanced``, ``pytorch`` or a plugin's).
    """


class ExperimentConfig(_Strict):
    """The ``experiment`` section: run directory, loggers, callbacks, checkpoints, profiler and resume.

    Attributes:
        name: The run's name: ``<root_dir>/<name>/<version>/``.
        root_dir: Where run directories are created.
        version: ``None`` takes the next free version; a string names one.
        tags: Free-form labels, saved in the run's metadata.
        description: A sentence saved in the run's metadata.
        loggers: Registry name to options; ``null`` removes a logger set by a lower layer.
        callbacks: Registry name to options; ``null`` removes a callback set by a lower layer.
        checkpoint: Checkpoint settings; ``null`` turns checkpointing off.
        profiler: A profiler's registry name, or a mapping with ``name`` and options.
        resume: ``auto``, a checkpoint path or a run version.
        allow_config_change: Resume even if the config differs from the resumed run's.
        runtime_updates: Read ``<run>/runtime.yaml`` between training steps and apply what ``enhtrain runs
            set/stop/checkpoint`` asks for (learning rate, clipping, logging interval, limits, patience, a
            checkpoint now, a graceful stop).
        sweep: Set by ``enhtrain sweep`` on a trial's layer: the study, the trial's number, the metric and the
            sampled values. Unset outside a sweep, and then left out of the saved config.
    """

    name: str = "default"
    root_dir: str = "runs"
    version: str | None = None
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    loggers: dict[str, dict[str, Any] | None] = Field(
        default_factory=lambda: {"csv": {}, "tensorboard": {}}
    )
    callbacks: dict[str, dict[str, Any] | None] = Field(
        default_factory=lambda: {"throughput": {}, "run_summary": {}}
    )
    checkpoint: CheckpointConfig | None = Field(default_factory=CheckpointConfig)
    profiler: str | ProfilerConfig | None = None
    resume: str | None = None
    allow_config_change: bool = False
    runtime_updates: bool = True
    # Left out of the dumped section when unset, so that a run outside a sweep saves the same config as before.
    sweep: dict[str, Any] | None = Field(default=None, exclude_if=lambda value: value is None)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        _check_length(value, "run name")
        if not _NAME.match(value):
            raise ValueError(f"{quote(value)} is not a valid run name: use letters, digits, '_', '-' and '.'")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_to_str(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str | None) -> str | None:
        if value is not None:
            _check_length(value, "version")
        if value is not None and not _NAME.match(value):
            raise ValueError(f"{quote(value)} is not a valid version: use letters, digits, '_', '-' and '.'")
        return value

    @field_validator("loggers", "callbacks", mode="before")
    @classmethod
    def _list_to_mapping(cls, value: Any) -> Any:
        # `loggers: [csv, tensorboard]` is a common shorthand for `{csv: {}, tensorboard: {}}`.
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return {v: {} for v in value}
        return value

    def active_loggers(self) -> dict[str, dict[str, Any]]:
        """Return the loggers that are switched on (entries set to ``null`` removed)."""
        return {k: dict(v) for k, v in self.loggers.items() if v is not None}

    def active_callbacks(self) -> dict[str, dict[str, Any]]:
        """Return the callbacks that are switched on (entries set to ``null`` removed)."""
        return {k: dict(v) for k, v in self.callbacks.items() if v is not None}

    def profiler_spec(self) -> tuple[str, dict[str, Any]] | None:
        """Return ``(name, options)`` of the chosen profiler, or ``None``."""
        if self.profiler is None:
            return None
        if isinstance(self.profiler, str):
            return self.profiler, {}
        return self.profiler.name, self.profiler.options()
