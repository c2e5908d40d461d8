"""The built-in loggers: CSV, TensorBoard, Weights & Biases and Comet, each writing into the run's ``logs/``."""

__all__: list[str] = []
