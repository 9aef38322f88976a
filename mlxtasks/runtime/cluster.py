"""Sharded chat and one-shot answers: one process per rank, started by `mlx.launch`, over mlx_lm's sharded_load.

    python -m mlxtasks.runtime.cluster --capabilities MODEL_FOLDER   # can mlx_lm shard it? protocol.Capabilities
    python -m mlxtasks.runtime.cluster --spec JSON                  # a protocol.ClusterSpec: a chat (rank 0
                                                                    # reads stdin), or one answer if it has `ask`

Every rank runs the same computation. Chat messages reach the other ranks from rank 0 through the
distributed group, so no rank depends on when its own copy of stdin arrives.
"""

from __future__ import annotations

import argparse
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol import Capabilities, ChatModel, ClusterSpec
from . import gpu
from .chat import Output, Refused, Session, _sampling_text, command, reader

# Chat commands that change what the model sees: every rank runs them. The rest only print or
# write files, which rank 0 alone does.
SHARED_COMMANDS = {"reset", "system", "set", "quit", "exit", "q"}
MISSING_MODEL = 3  # exit status of a rank whose host lacks the model folder


def capabilities(path: str) -> Capabilities:
    """What sharded_load will accept for this model, decided the way sharded_load decides it."""
    from mlx_lm.utils import load_model

    model, config = load_model(Path(path), lazy=True, strict=False)
    return Capabilities(
        config.get("model_type"), hasattr(model, "shard"), hasattr(model, "model") and hasattr(model.model, "pipeline")
    )


@dataclass
class ShardedSession(Session):
    """A chat session whose model holds only this rank's part of the weights."""

    group: Any = None  # mlx.core.distributed.Group
    pipeline: bool = False

    def open_model(self, path: str):
        from mlx_lm.utils import sharded_load

        return sharded_load(path, self.group if self.pipeline else None, None if self.pipeline else self.group)


def share_text(group, text: str | None) -> str:
    """Rank 0's text on every rank (the others pass None): a length, then the bytes, each summed over the group."""
    import mlx.core as mx

    data = (text or "").encode() if group.rank() == 0 else b""
    size = mx.distributed.all_sum(mx.array(len(data)), group=group, stream=mx.cpu).item()
    buffer = list(data) if group.rank() == 0 else [0] * size
    summed = mx.distributed.all_sum(mx.array(buffer or [0], dtype=mx.uint8), group=group, stream=mx.cpu)
    return bytes(summed.tolist()[:size]).decode()


def weights_bytes(model) -> int:
    from mlx.utils import tree_flatten

    return sum(value.nbytes for _, value in tree_flatten(model.parameters()))


def chat(session: ShardedSession, rank: int) -> None:
    import mlx.core as mx
    from mlx_lm.generate import generation_stream

    out, say, read = Output(), (lambda s: print(s, flush=True)), reader(session)
    if rank == 0:
        say(
            f"Chatting with {session.alias} across {session.group.size()} ranks ({_sampling_text(session)}). "
            "/help for commands, /quit or Ctrl-D to leave, Ctrl-C stops the whole run."
        )
    while True:
        text = None
        if rank == 0:
            try:
                text = read(">>> ")
            except EOFError:
                text = "/quit"
        text = share_text(session.group, text)
        if not text.strip():
            continue
        if text.startswith("/"):
            line = text.strip()
            if line[1:].partition(" ")[0] == "model":  # loading is collective: rank 0 alone would wait for ever
                if rank == 0:
                    say("(a cluster chat holds one model; leave and start another run to switch)")
                continue
            if rank == 0:
                keep_going = command(session, line, say)
            elif line[1:].partition(" ")[0] in SHARED_COMMANDS:
                keep_going = command(session, line, lambda s: None)
            else:
                keep_going = True
            if not keep_going:
                return
            continue
        try:
            session.reply(text, out.write if rank == 0 else (lambda chunk: None))
        except Refused as refusal:  # every rank refuses alike: same text, same tokenizer
            if rank == 0:
                refusal.show()
            continue
        # generate_step computes one token ahead, collectives included: let them finish before the next
        # share_text, or a rank that reads its next message at once (typed ahead) interleaves the two.
        mx.synchronize(generation_stream)
        if rank == 0:
            out.end()
            for notice in session.notices:
                say(notice)
        session.notices.clear()


def main() -> int:
    gpu.use_kernel_cache()
    parser = argparse.ArgumentParser()
    parser.add_argument("--capabilities", metavar="MODEL_FOLDER", help="print what sharding the model supports")
    parser.add_argument("--spec", help="JSON: a protocol.ClusterSpec")
    args = parser.parse_args()
    if args.capabilities:
        print(capabilities(args.capabilities).to_json())
        return 0
    spec = ClusterSpec.from_json(args.spec)
    host = socket.gethostname()
    if not (Path(spec.path) / "config.json").is_file():
        print(f"{host} has no model in {spec.path}.", file=sys.stderr)
        return MISSING_MODEL
    import mlx.core as mx

    group = mx.distributed.init(strict=True, backend=spec.backend)
    mx.random.seed(spec.seed or 0)
    session = ShardedSession(
        {spec.alias: ChatModel(spec.path, spec.sampling)},
        spec.alias,
        dict(spec.overrides),
        spec.system,
        group=group,
        pipeline=spec.pipeline,
    )
    try:
        session.load(spec.alias)
    except Refused as refusal:  # each rank says its own: one host may lack what another has
        refusal.show()
        return 1
    if spec.verbose:
        print(
            f"rank {group.rank()} of {group.size()} on {host}: {'pipeline' if spec.pipeline else 'tensor'} part, "
            f"{weights_bytes(session.model)} bytes of weights",
            file=sys.stderr,
            flush=True,
        )
    if spec.ask is None:
        chat(session, group.rank())
    else:
        try:
            session.reply(spec.ask, Output().write if group.rank() == 0 else (lambda chunk: None))
        except Refused as refusal:  # before any generation, and alike on every rank: same prompt, same tokenizer
            if group.rank() == 0:
                refusal.show()
            mx.eval(mx.distributed.all_sum(mx.array(1.0), group=group, stream=mx.cpu))  # rank 0 has said it
            return 1
        if group.rank() == 0:
            Output().end()
    # generate_step computes one token ahead, collectives included: a rank that left before the
    # others finished that step would break their connection.
    mx.eval(mx.distributed.all_sum(mx.array(1.0), group=group, stream=mx.cpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
