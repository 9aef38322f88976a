"""Code that runs inside the MLX venv's interpreter (`$MLX_VENV_PATH/bin/python -m mlxtasks.runtime.X`)."""
