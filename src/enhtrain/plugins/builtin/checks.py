"""Cross-field checks of a composed config, registered through ``enhtrain_validate_config``.

Each catches a combination Lightning would only reject after the run has started, or never.
"""

from __future__ import annotations

from typing import Any

from enhtrain.errors import ConfigError
from enhtrain.plugins.hookspecs import hookimpl

_REFERENCE_MODEL = "enhtrain.models.MLPClassifier"
_CPU_ONLY_UNSUPPORTED_STRATEGIES = ("fsdp", "deepspeed")


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The mapping of a section; ``{}`` when it is missing or not a mapping, which the parser reports itself."""
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _init_args(config: dict[str, Any], section: str) -> dict[str, Any]:
    value = config.get(section)
    if not isinstance(value, dict):
        return {}
    args = value.get("init_args", value)
    return args if isinstance(args, dict) else {}


def _check_micro_batch(config: dict[str, Any]) -> None:
    micro = _init_args(config, "model").get("micro_batch_size")
    batch = _init_args(config, "data").get("batch_size")
    if isinstance(micro, int) and isinstance(batch, int) and not isinstance(micro, bool) and micro > batch:
        raise ConfigError(
            f"model.init_args.micro_batch_size ({micro}) is larger than data.init_args.batch_size ({batch}): "
            "a micro-batch is a slice of a batch; lower micro_batch_size or raise batch_size"
        )


def _manual_reference_model(config: dict[str, Any]) -> bool:
    model = config.get("model")
    if not isinstance(model, dict) or model.get("class_path") not in (_REFERENCE_MODEL,
                                                                     "enhtrain.models.mlp_classifier.MLPClassifier"):
        return False
    return _init_args(config, "model").get("manual_optimization", True) is not False


def _check_manual_optimisation(config: dict[str, Any]) -> None:
    if not _manual_reference_model(config):
        return
    trainer = _section(config, "trainer")
    if trainer.get("gradient_clip_val") not in (None, 0, 0.0):
        raise ConfigError(
            "trainer.gradient_clip_val does not apply to manual optimisation (the reference model's default): "
            "set model.init_args.gradient_clip_val instead"
        )
    if trainer.get("accumulate_grad_batches") not in (None, 1):
        raise ConfigError(
            "trainer.accumulate_grad_batches does not apply to manual optimisation: set "
            "model.init_args.micro_batch_size to split each batch, or model.init_args.manual_optimization: false"
        )


def _check_devices(config: dict[str, Any]) -> None:
    trainer = _section(config, "trainer")
    accelerator = str(trainer.get("accelerator") or "auto")
    strategy = trainer.get("strategy")
    strategy_name = strategy if isinstance(strategy, str) else ""
    if accelerator == "cpu" and strategy_name.startswith(_CPU_ONLY_UNSUPPORTED_STRATEGIES):
        raise ConfigError(
            f"trainer.strategy '{strategy_name}' needs GPUs but trainer.accelerator is cpu: use strategy ddp "
            "on CPU, or accelerator gpu"
        )
    precision = str(trainer.get("precision") or "")
    if accelerator == "cpu" and precision in ("16", "16-mixed", "16-true"):
        raise ConfigError(
            f"trainer.precision '{precision}' is not supported on CPU: use bf16-mixed or 32-true"
        )
    every = trainer.get("check_val_every_n_epoch")
    if isinstance(every, int) and not isinstance(every, bool) and every < 1:
        raise ConfigError(f"trainer.check_val_every_n_epoch must be a positive integer or null, got {every}")
    devices = trainer.get("devices")
    if isinstance(devices, int) and not isinstance(devices, bool) and devices < 1 and devices != -1:
        raise ConfigError(f"trainer.devices must be a positive number, -1 or 'auto', got {devices}")


@hookimpl
def enhtrain_validate_config(config: dict[str, Any]) -> None:
    """Reject configs Lightning would fail on late: micro-batch sizes, manual optimisation, device combos."""
    _check_micro_batch(config)
    _check_manual_optimisation(config)
    _check_devices(config)
