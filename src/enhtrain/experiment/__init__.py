"""Run directories, run metadata and the loggers that write into them."""

__all__: list[str] = []
