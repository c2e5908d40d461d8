"""``python -m enhtrain``."""

import sys

from enhtrain.commands import main

if __name__ == "__main__":
    sys.exit(main())
