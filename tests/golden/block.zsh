# >>> mlxtasks >>>
# managed by mlxtasks; edit via invoke shell.install; sha256 1134b53a3ff7
# MLX commands for zsh. No subprocess runs when this is read; re-reading it is harmless.
export MLX_VENV_PATH='/home/u/venv-mlx'
export MLX_MODELS_PATH='/home/u/workspace/mlx'

# An alias of the same name (an older setup script made some, `alias mlxtasks=...` is a common one) would be
# expanded inside these definitions as zsh reads them, at every start: each name they define or call goes first.
\builtin unalias mlxtasks _mlx_require mlx-activate mlx-deactivate mlx-status mlx-models mlx-validate mlx-pull mlx-search mlx-serve mlx-serve-stop mlx-ps mlx-ask mlx-chat mlx-qwen7b mlx-chat-qwen7b mlx-qwen32b mlx-chat-qwen32b mlx-deepseek mlx-chat-deepseek mlx-phi4 mlx-chat-phi4 mlx-mistral7b mlx-chat-mistral7b mlx-qwen3-8b mlx-chat-qwen3-8b mlx-llama3.1-8b mlx-chat-llama3.1-8b mlx-qwen3-coder-30b mlx-chat-qwen3-coder-30b mlx-qwen3-30b mlx-chat-qwen3-30b mlx-gemma3-27b mlx-chat-gemma3-27b mlx-gpt-oss-20b mlx-chat-gpt-oss-20b mlx-llama3.3-70b mlx-chat-llama3.3-70b 2>/dev/null || \builtin true

# bin/python links to the Python the venv was made from: with that one gone, every tool in it fails.
function _mlx_require {
    [[ -x "$MLX_VENV_PATH/bin/$1" && -x "$MLX_VENV_PATH/bin/python" ]] && return 0
    if [[ -e "$MLX_VENV_PATH/bin/$1" || -L "$MLX_VENV_PATH/bin/$1" ]]; then
        \builtin printf 'mlx: the venv %s has lost its Python (removed or upgraded); run: %s\n' "$MLX_VENV_PATH" 'sh '\''/home/u/my mlxtasks/bootstrap.sh'\''' >&2
    else
        \builtin printf 'mlx: %s is not in %s; run: %s\n' "$1" "$MLX_VENV_PATH" 'sh '\''/home/u/my mlxtasks/bootstrap.sh'\''' >&2
    fi
    return 1
}

# activate sets the venv's variables for the whole shell: meant, so WARN_CREATE_GLOBAL has nothing to say.
function mlx-activate {
    \builtin setopt local_options no_warn_create_global
    _mlx_require python && \builtin source "$MLX_VENV_PATH/bin/activate"
}

function mlx-deactivate {
    if [[ -n "${VIRTUAL_ENV:-}" && "$VIRTUAL_ENV" -ef "$MLX_VENV_PATH" ]] && (( ${+functions[deactivate]} )); then
        deactivate
    else
        \builtin print -u2 "mlx-deactivate: the MLX venv is not active"
        return 1
    fi
}

# `mlxtasks TASK ...`: every task from any folder, as `invoke TASK ...` in the checkout.
function mlxtasks { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" "$@"; }
# MLX_SHELL: the status checks this shell's rc file, whatever $SHELL says.
function mlx-status { _mlx_require python && MLX_SHELL=zsh "$MLX_VENV_PATH/bin/python" -m mlxtasks.status "$@"; }
function mlx-models { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.list "$@"; }
function mlx-validate { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" validate "$@"; }
function mlx-pull { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.pull "$@"; }
function mlx-search { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.search "$@"; }
# The OpenAI-compatible server (`mlx-serve [MODEL] [options]`, the default model when none is named).
function mlx-serve {
    case "${1:-}" in ""|-*) set -- default "$@" ;; esac
    _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" serve --venv "$MLX_VENV_PATH" --models "$MLX_MODELS_PATH" "$@"
}
function mlx-serve-stop { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" serve.stop "$@"; }
function mlx-ps { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" serve.ps "$@"; }

# One answer on stdout (`mlx-qwen7b "question" [options]`, `-` reads stdin), or a chat session.
# `mlx-ask MODEL "question"` and `mlx-chat [MODEL]` take any installed model (the default when none is named).
function mlx-ask {
    [ $# -ge 2 ] || { \builtin print -ru2 -- 'usage: mlx-ask MODEL "question" [options] (- reads the question from stdin)'; return 2; }
    _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" chat.ask --venv "$MLX_VENV_PATH" --models "$MLX_MODELS_PATH" --model "$@"
}
function mlx-chat {
    case "${1:-}" in ""|-*) set -- default "$@" ;; esac
    _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" chat --venv "$MLX_VENV_PATH" --models "$MLX_MODELS_PATH" "$@"
}
function mlx-qwen7b { mlx-ask qwen7b "$@"; }
function mlx-chat-qwen7b { mlx-chat qwen7b "$@"; }
function mlx-qwen32b { mlx-ask qwen32b "$@"; }
function mlx-chat-qwen32b { mlx-chat qwen32b "$@"; }
function mlx-deepseek { mlx-ask deepseek "$@"; }
function mlx-chat-deepseek { mlx-chat deepseek "$@"; }
function mlx-phi4 { mlx-ask phi4 "$@"; }
function mlx-chat-phi4 { mlx-chat phi4 "$@"; }
function mlx-mistral7b { mlx-ask mistral7b "$@"; }
function mlx-chat-mistral7b { mlx-chat mistral7b "$@"; }
function mlx-qwen3-8b { mlx-ask qwen3-8b "$@"; }
function mlx-chat-qwen3-8b { mlx-chat qwen3-8b "$@"; }
function mlx-llama3.1-8b { mlx-ask llama3.1-8b "$@"; }
function mlx-chat-llama3.1-8b { mlx-chat llama3.1-8b "$@"; }
function mlx-qwen3-coder-30b { mlx-ask qwen3-coder-30b "$@"; }
function mlx-chat-qwen3-coder-30b { mlx-chat qwen3-coder-30b "$@"; }
function mlx-qwen3-30b { mlx-ask qwen3-30b "$@"; }
function mlx-chat-qwen3-30b { mlx-chat qwen3-30b "$@"; }
function mlx-gemma3-27b { mlx-ask gemma3-27b "$@"; }
function mlx-chat-gemma3-27b { mlx-chat gemma3-27b "$@"; }
function mlx-gpt-oss-20b { mlx-ask gpt-oss-20b "$@"; }
function mlx-chat-gpt-oss-20b { mlx-chat gpt-oss-20b "$@"; }
function mlx-llama3.3-70b { mlx-ask llama3.3-70b "$@"; }
function mlx-chat-llama3.3-70b { mlx-chat llama3.3-70b "$@"; }
# <<< mlxtasks <<<
