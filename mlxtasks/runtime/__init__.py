"""Code that runs inside the MLX venv's interpreter (`$MLX_VENV_PATH/bin/python -m mlxtasks.runtime.X`).

Importing it changes nothing: each entry point's main() calls gpu.use_kernel_cache() first, before mlx loads.
"""
