"""The OpenAI-compatible server: mlx_lm.server itself, held to the one model it was started with.

Run by `invoke serve` in the venv: `python -m mlxtasks.runtime.serve --alias NAME [mlx_lm.server's flags]`.
Left alone, mlx_lm's server loads whatever model a request names (from the hub if need be, dropping the
one it holds) and lists the whole Hugging Face cache. Here:
- a request may name only the served model (its alias, its folder, or none); others get mlx_lm's 404;
- /v1/models lists that alias alone;
- the model loads before the port opens, so a server that answers is ready;
- bound to loopback, a request whose Host is not a loopback name gets 403 (DNS rebinding: a web page
  whose name points at 127.0.0.1 would otherwise count as the same origin and read the answers).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlx_lm import server

from ..protocol import host_name, is_loopback


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="mlx_lm.server for one model, under its catalogue alias.")
    parser.add_argument("--alias", required=True, help="the name clients use for the model")
    ours, rest = parser.parse_known_args(argv)
    OneModel.alias = ours.alias
    server.ModelProvider = OneModel  # mlx_lm's main() builds its provider from this name
    server.APIHandler.handle_models_request = list_served_model
    server.APIHandler.parse_request = parse_request_from_loopback
    sys.argv = [sys.argv[0], *rest]
    server.main()


class OneModel(server.ModelProvider):
    alias = ""

    def __init__(self, cli_args):
        super().__init__(cli_args)
        self.names = {"default_model", self.alias, cli_args.model, str(Path(cli_args.model).resolve())}
        self.load_default()

    def load(self, model_path, adapter_path=None, draft_model_path=None):
        if model_path not in self.names or adapter_path is not None or draft_model_path not in (None, "default_model"):
            raise ValueError(f"The model {model_path!r} is not served here; this server serves {self.alias!r}.")
        return super().load("default_model", None, "default_model")


def list_served_model(handler) -> None:
    handler._set_completion_headers(200)
    handler.end_headers()
    model = {"id": OneModel.alias, "object": "model", "created": handler.created, "owned_by": "mlxtasks"}
    handler.wfile.write(json.dumps({"object": "list", "data": [model]}).encode())


_parse_request = server.APIHandler.parse_request


def parse_request_from_loopback(handler) -> bool:
    if not _parse_request(handler):
        return False
    if is_loopback(handler.server.server_address[0]):
        host = host_name(handler.headers.get("Host") or "")
        if host and not is_loopback(host):
            handler.send_error(403, "This server answers only requests addressed to localhost")
            return False
    return True


if __name__ == "__main__":
    main()
