"""mlxtasks' server: OpenAI's, Anthropic's, the Responses API and Ollama's over one request path (core.py), on Starlette and
uvicorn (web.py), with one mlx_lm BatchGenerator per loaded model (engine.py, pool.py)."""
