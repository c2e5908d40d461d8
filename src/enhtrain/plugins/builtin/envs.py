"""Contributes the built-in ``dev``, ``test`` and ``prod`` environment overlays."""

from __future__ import annotations

from pathlib import Path

from enhtrain.plugins.hookspecs import hookimpl

ENV_DIR = Path(__file__).resolve().parents[2] / "config" / "envs"


@hookimpl
def enhtrain_env_overlays(env: str) -> list[str] | None:
    """Return the built-in overlay for ``env``, if there is one."""
    path = ENV_DIR / f"{env}.yaml"
    return [str(path)] if path.is_file() else None


def builtin_envs() -> list[str]:
    """Return the names of the built-in environments."""
    return sorted(p.stem for p in ENV_DIR.glob("*.yaml"))
