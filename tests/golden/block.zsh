# >>> mlxtasks >>>
# managed by mlxtasks; edit via invoke shell.install
# MLX commands for zsh. No subprocess runs when this is read; re-reading it is harmless.
export MLX_VENV_PATH='/home/u/venv-mlx'
export MLX_MODELS_PATH='/home/u/workspace/mlx'

# An alias of the same name (an older setup script made some) would break these definitions.
\builtin unalias mlx-activate mlx-deactivate mlx-status mlx-models mlx-validate mlx-pull mlx-qwen7b mlx-chat-qwen7b mlx-qwen32b mlx-chat-qwen32b mlx-deepseek mlx-chat-deepseek mlx-phi4 mlx-chat-phi4 mlx-mistral7b mlx-chat-mistral7b 2>/dev/null || \builtin true

function _mlx_require {
    [[ -x "$MLX_VENV_PATH/bin/$1" ]] && return 0
    \builtin printf 'mlx: %s is not in %s; run: invoke setup\n' "$1" "$MLX_VENV_PATH" >&2
    return 1
}

function mlx-activate { _mlx_require python && \builtin source "$MLX_VENV_PATH/bin/activate"; }

function mlx-deactivate {
    if [[ -n "${VIRTUAL_ENV:-}" && "$VIRTUAL_ENV" -ef "$MLX_VENV_PATH" ]] && (( $+functions[deactivate] )); then
        deactivate
    else
        \builtin print -u2 "mlx-deactivate: the MLX venv is not active"
        return 1
    fi
}

function mlx-status { _mlx_require python && "$MLX_VENV_PATH/bin/python" -m mlxtasks.runtime.status "$@"; }
function mlx-models { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.list "$@"; }
function mlx-validate { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" validate "$@"; }
function mlx-pull { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.pull "$@"; }

# _mlx_model FOLDER ALIAS generate|chat [ARGS]: `mlx-qwen7b "question" [options]` means --prompt "question" [options].
function _mlx_model {
    \builtin local folder=$1 alias=$2 command=$3
    \builtin shift 3
    if [[ ! -d "$MLX_MODELS_PATH/$folder" ]]; then
        \builtin printf 'mlx: the model %s is not downloaded; run: mlx-pull %s\n' "$alias" "$alias" >&2
        return 1
    fi
    _mlx_require "mlx_lm.$command" || return 1
    if [[ "$command" == generate && $# -gt 0 && "$1" != -* ]]; then
        \builtin local prompt=$1
        \builtin shift
        "$MLX_VENV_PATH/bin/mlx_lm.generate" --model "$MLX_MODELS_PATH/$folder" --prompt "$prompt" "$@"
    else
        "$MLX_VENV_PATH/bin/mlx_lm.$command" --model "$MLX_MODELS_PATH/$folder" "$@"
    fi
}
function mlx-qwen7b { _mlx_model 'qwen25-coder-7b' qwen7b generate "$@"; }
function mlx-chat-qwen7b { _mlx_model 'qwen25-coder-7b' qwen7b chat "$@"; }
function mlx-qwen32b { _mlx_model 'qwen25-coder-32b' qwen32b generate "$@"; }
function mlx-chat-qwen32b { _mlx_model 'qwen25-coder-32b' qwen32b chat "$@"; }
function mlx-deepseek { _mlx_model 'deepseek-r1-8b' deepseek generate "$@"; }
function mlx-chat-deepseek { _mlx_model 'deepseek-r1-8b' deepseek chat "$@"; }
function mlx-phi4 { _mlx_model 'phi4-14b' phi4 generate "$@"; }
function mlx-chat-phi4 { _mlx_model 'phi4-14b' phi4 chat "$@"; }
function mlx-mistral7b { _mlx_model 'mistral-7b' mistral7b generate "$@"; }
function mlx-chat-mistral7b { _mlx_model 'mistral-7b' mistral7b chat "$@"; }
# <<< mlxtasks <<<
