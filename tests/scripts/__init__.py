"""Small Lightning scripts of the kinds users bring to enhtrain, one per way of writing one.

Each module has ``main(args, cli_class)``, which builds its CLI with ``cli_class`` (``LightningCLI`` or
``EnhancedCLI``) and the given command line, as the script's ``if __name__ == "__main__"`` block would with
``sys.argv``, and returns the CLI. ``tests/test_real_scripts.py`` runs each one three ways and compares them.
"""
