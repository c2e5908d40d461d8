"""The built-in plugins: enhtrain's own and Lightning's components, registered through the public hooks.

Each module here is an ordinary plugin, loaded by :mod:`enhtrain.plugins` after the third-party ones.
Components are named by import path, so listing them imports neither torch nor Lightning.
"""

__all__: list[str] = []
