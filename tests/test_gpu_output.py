"""runtime/gpu.answer_only: what a generation prints on stdout is kept off it, with a generator standing in for
mlx_lm's stream_generate, printing what its wired_limit() prints (the real one runs in test_chat_e2e.py)."""

import io
from contextlib import redirect_stdout

from mlxtasks.runtime import gpu

MLX_LM_SAYS = (
    "[WARNING] Generating with a model that requires 17000 MB which is close to the maximum recommended "
    "size of 17500 MB. This can be slow. See the documentation for possible work-arounds: "
    "https://github.com/ml-explore/mlx-lm/tree/main#large-models"
)


def generation(closed):
    try:
        print(MLX_LM_SAYS)
        print("something else")
        yield from ("a", "b")
    finally:
        closed.append(True)


def test_the_answer_alone_reaches_stdout_and_the_warning_is_said_once_in_our_words(monkeypatch):
    monkeypatch.setattr(gpu, "_warned", False)
    said, closed, out = [], [], io.StringIO()
    with redirect_stdout(out):
        first = list(gpu.answer_only(generation(closed), said.append))
        again = gpu.answer_only(generation(closed), said.append)
        next(again)
        again.close()  # the reader stops early (Ctrl-C): the generation is closed too, its finally runs
    assert (first, out.getvalue(), closed) == (["a", "b"], "", [True, True])
    assert said == [
        "(the model needs 17,000 MB, close to the 17,500 MB Metal recommends the GPU use at most, so answers "
        "may be slow; a smaller model fits better: invoke models.list)",
        "something else",
        "something else",
    ]
