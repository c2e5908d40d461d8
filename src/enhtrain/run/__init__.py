"""A run on disk: its directory and lock, the session that writes it, metadata, resume and components."""

__all__: list[str] = []
