"""mlxtasks: Invoke tasks that set up and look after a local MLX environment."""

__version__ = "0.1.0"
