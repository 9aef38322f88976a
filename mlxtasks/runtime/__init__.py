"""Code that runs inside the MLX venv's interpreter (`$MLX_VENV_PATH/bin/python -m mlxtasks.runtime.X`)."""

from .gpu import use_kernel_cache

use_kernel_cache()  # before any entry point imports mlx
