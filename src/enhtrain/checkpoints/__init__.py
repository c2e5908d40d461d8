"""Checkpoints: atomic saves, embedded metadata, the manifest, verification and safe loading.

``enhtrain.checkpoints.manifest`` imports no torch; the rest is imported where a checkpoint is written or
read.
"""

__all__: list[str] = []
