"""Reference LightningModules: plain Lightning, usable without the rest of enhtrain."""

from enhtrain.models.mlp_classifier import MLPClassifier

__all__ = ["MLPClassifier"]
