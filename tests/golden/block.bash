# >>> mlxtasks >>>
# managed by mlxtasks; edit via invoke shell.install; sha256 d7570b083562
# MLX commands for bash. No subprocess runs when this is read; re-reading it is harmless.
# Dashed names are aliases of _mlx_* functions: bash takes dashes in aliases in every mode,
# and the guard skips the lot in shells that are not bash (a ~/.profile is read by sh too).
# bash reads the whole `if` below before running any of it, expanding aliases as it reads: an alias named like
# a function here (`alias mlxtasks=...` is a common one) goes first, out here (harmless to sh).
\unalias mlxtasks _mlx_require _mlx_activate _mlx_deactivate _mlx_status _mlx_models _mlx_validate _mlx_pull \
    _mlx_search _mlx_serve _mlx_serve_stop _mlx_ps _mlx_ask _mlx_chat 2>/dev/null || true
if [ -n "${BASH_VERSION:-}" ]; then
export MLX_VENV_PATH='/home/u/venv-mlx'
export MLX_MODELS_PATH='/home/u/workspace/mlx'

# bin/python links to the Python the venv was made from: with that one gone, every tool in it fails.
_mlx_require() {
    [ -x "$MLX_VENV_PATH/bin/$1" ] && [ -x "$MLX_VENV_PATH/bin/python" ] && return 0
    if [ -e "$MLX_VENV_PATH/bin/$1" ] || [ -L "$MLX_VENV_PATH/bin/$1" ]; then
        printf 'mlx: the venv %s has lost its Python (removed or upgraded); run: %s\n' "$MLX_VENV_PATH" 'sh '\''/home/u/my mlxtasks/bootstrap.sh'\''' >&2
    else
        printf 'mlx: %s is not in %s; run: %s\n' "$1" "$MLX_VENV_PATH" 'sh '\''/home/u/my mlxtasks/bootstrap.sh'\''' >&2
    fi
    return 1
}

_mlx_activate() {
    # shellcheck source=/dev/null
    _mlx_require python && . "$MLX_VENV_PATH/bin/activate"
}

_mlx_deactivate() {
    if [ -n "${VIRTUAL_ENV:-}" ] && [ "$VIRTUAL_ENV" -ef "$MLX_VENV_PATH" ] && command -v deactivate >/dev/null 2>&1; then
        deactivate
    else
        echo "mlx-deactivate: the MLX venv is not active" >&2
        return 1
    fi
}

# `mlxtasks TASK ...`: every task from any folder, as `invoke TASK ...` in the checkout.
mlxtasks() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" "$@"; }
# MLX_SHELL: the status checks this shell's rc file, whatever $SHELL says.
_mlx_status() { _mlx_require python && MLX_SHELL=bash "$MLX_VENV_PATH/bin/python" -m mlxtasks.status "$@"; }
_mlx_models() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.list "$@"; }
_mlx_validate() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" validate "$@"; }
_mlx_pull() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.pull "$@"; }
_mlx_search() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.search "$@"; }
# The OpenAI-compatible server (`mlx-serve [MODEL] [options]`, the default model when none is named).
_mlx_serve() {
    case "${1:-}" in ""|-*) set -- default "$@" ;; esac
    _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" serve --venv "$MLX_VENV_PATH" --models "$MLX_MODELS_PATH" "$@"
}
_mlx_serve_stop() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" serve.stop "$@"; }
_mlx_ps() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" serve.ps "$@"; }

# One answer on stdout (`mlx-qwen7b "question" [options]`, `-` reads stdin), or a chat session.
# `mlx-ask MODEL "question"` and `mlx-chat [MODEL]` take any installed model (the default when none is named).
_mlx_ask() {
    [ $# -ge 2 ] || { echo 'usage: mlx-ask MODEL "question" [options] (- reads the question from stdin)' >&2; return 2; }
    _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" chat.ask --venv "$MLX_VENV_PATH" --models "$MLX_MODELS_PATH" --model "$@"
}
_mlx_chat() {
    case "${1:-}" in ""|-*) set -- default "$@" ;; esac
    _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" chat --venv "$MLX_VENV_PATH" --models "$MLX_MODELS_PATH" "$@"
}

alias mlx-activate=_mlx_activate mlx-deactivate=_mlx_deactivate mlx-status=_mlx_status
alias mlx-models=_mlx_models mlx-validate=_mlx_validate mlx-pull=_mlx_pull mlx-search=_mlx_search
alias mlx-serve=_mlx_serve mlx-serve-stop=_mlx_serve_stop mlx-ps=_mlx_ps mlx-ask=_mlx_ask mlx-chat=_mlx_chat
alias mlx-qwen7b="_mlx_ask qwen7b" mlx-chat-qwen7b="_mlx_chat qwen7b"
alias mlx-qwen32b="_mlx_ask qwen32b" mlx-chat-qwen32b="_mlx_chat qwen32b"
alias mlx-deepseek="_mlx_ask deepseek" mlx-chat-deepseek="_mlx_chat deepseek"
alias mlx-phi4="_mlx_ask phi4" mlx-chat-phi4="_mlx_chat phi4"
alias mlx-mistral7b="_mlx_ask mistral7b" mlx-chat-mistral7b="_mlx_chat mistral7b"
alias mlx-qwen3-8b="_mlx_ask qwen3-8b" mlx-chat-qwen3-8b="_mlx_chat qwen3-8b"
alias mlx-llama3.1-8b="_mlx_ask llama3.1-8b" mlx-chat-llama3.1-8b="_mlx_chat llama3.1-8b"
alias mlx-qwen3-coder-30b="_mlx_ask qwen3-coder-30b" mlx-chat-qwen3-coder-30b="_mlx_chat qwen3-coder-30b"
alias mlx-qwen3-30b="_mlx_ask qwen3-30b" mlx-chat-qwen3-30b="_mlx_chat qwen3-30b"
alias mlx-gemma3-27b="_mlx_ask gemma3-27b" mlx-chat-gemma3-27b="_mlx_chat gemma3-27b"
alias mlx-gpt-oss-20b="_mlx_ask gpt-oss-20b" mlx-chat-gpt-oss-20b="_mlx_chat gpt-oss-20b"
alias mlx-llama3.3-70b="_mlx_ask llama3.3-70b" mlx-chat-llama3.3-70b="_mlx_chat llama3.3-70b"
fi
# <<< mlxtasks <<<
