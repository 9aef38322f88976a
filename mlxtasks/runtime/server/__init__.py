"""mlxtasks' OpenAI-compatible server: Starlette and uvicorn over mlx_lm's BatchGenerator, for one model."""
