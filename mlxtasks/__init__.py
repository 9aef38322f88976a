"""mlxtasks: Invoke tasks that set up and look after a local MLX environment."""

from . import exits

__version__ = "0.1.0"

exits.start()  # first of all: Ctrl-C while the rest imports ends quietly with 130
