"""Merging config layers: mappings merge key by key, everything else (lists included) replaces."""

from __future__ import annotations

import copy
from typing import Any

from enhtrain.config.loading import KeyPath, Layer

__all__ = ["merge_layers", "set_path"]


def _drop_under(sources: dict[KeyPath, str], prefix: KeyPath) -> None:
    n = len(prefix)
    for key in [k for k in sources if k[:n] == prefix or prefix[: len(k)] == k]:
        del sources[key]


def _merge(dst: dict[str, Any], src: dict[str, Any], dst_src: dict[KeyPath, str], src_src: dict[KeyPath, str],
           prefix: KeyPath) -> None:
    for key, value in src.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value and isinstance(dst.get(key), dict):
            dst_src.pop(path, None)  # an empty mapping was a leaf; its children now say where they came from
            _merge(dst[key], value, dst_src, src_src, path)
            continue
        dst[key] = copy.deepcopy(value)
        _drop_under(dst_src, path)
        n = len(path)
        dst_src.update({k: v for k, v in src_src.items() if k[:n] == path})


def merge_layers(*layers: Layer) -> Layer:
    """Merge layers, lowest first, into a new :class:`Layer`; inputs are not modified."""
    out = Layer()
    for layer in layers:
        _merge(out.data, layer.data, out.sources, layer.sources, ())
    return out


def set_path(layer: Layer, path: KeyPath, value: Any, label: str) -> None:
    """Set one dotted value in ``layer`` (creating mappings on the way), recording ``label`` as its source."""
    nested: Any = value
    for key in reversed(path):
        nested = {key: nested}
    sources: dict[KeyPath, str] = {}
    if isinstance(value, dict) and value:
        def walk(obj: dict[str, Any], prefix: KeyPath) -> None:
            for k, v in obj.items():
                if isinstance(v, dict) and v:
                    walk(v, (*prefix, k))
                else:
                    sources[(*prefix, k)] = label
        walk(value, path)
    else:
        sources[path] = label
    _merge(layer.data, nested, layer.sources, sources, ())
