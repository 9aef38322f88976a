# >>> mlxtasks >>>
# managed by mlxtasks; edit via invoke shell.install
# MLX commands for bash. No subprocess runs when this is read; re-reading it is harmless.
# Dashed names are aliases of _mlx_* functions: bash takes dashes in aliases in every mode,
# and the guard skips the lot in shells that are not bash (a ~/.profile is read by sh too).
if [ -n "${BASH_VERSION:-}" ]; then
export MLX_VENV_PATH='/home/u/venv-mlx'
export MLX_MODELS_PATH='/home/u/workspace/mlx'

_mlx_require() {
    [ -x "$MLX_VENV_PATH/bin/$1" ] && return 0
    printf 'mlx: %s is not in %s; run: invoke setup\n' "$1" "$MLX_VENV_PATH" >&2
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

_mlx_status() { _mlx_require python && "$MLX_VENV_PATH/bin/python" -m mlxtasks.runtime.status "$@"; }
_mlx_models() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.list "$@"; }
_mlx_validate() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" validate "$@"; }
_mlx_pull() { _mlx_require mlxtasks && "$MLX_VENV_PATH/bin/mlxtasks" models.pull "$@"; }

# _mlx_model FOLDER ALIAS generate|chat [ARGS]: `mlx-qwen7b "question" [options]` means --prompt "question" [options].
_mlx_model() {
    local folder=$1 alias=$2 command=$3
    shift 3
    if [ ! -d "$MLX_MODELS_PATH/$folder" ]; then
        printf 'mlx: the model %s is not downloaded; run: mlx-pull %s\n' "$alias" "$alias" >&2
        return 1
    fi
    _mlx_require "mlx_lm.$command" || return 1
    if [ "$command" = generate ] && [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
        local prompt=$1
        shift
        "$MLX_VENV_PATH/bin/mlx_lm.generate" --model "$MLX_MODELS_PATH/$folder" --prompt "$prompt" "$@"
    else
        "$MLX_VENV_PATH/bin/mlx_lm.$command" --model "$MLX_MODELS_PATH/$folder" "$@"
    fi
}

alias mlx-activate=_mlx_activate mlx-deactivate=_mlx_deactivate mlx-status=_mlx_status
alias mlx-models=_mlx_models mlx-validate=_mlx_validate mlx-pull=_mlx_pull
alias mlx-qwen7b="_mlx_model 'qwen25-coder-7b' qwen7b generate" mlx-chat-qwen7b="_mlx_model 'qwen25-coder-7b' qwen7b chat"
alias mlx-qwen32b="_mlx_model 'qwen25-coder-32b' qwen32b generate" mlx-chat-qwen32b="_mlx_model 'qwen25-coder-32b' qwen32b chat"
alias mlx-deepseek="_mlx_model 'deepseek-r1-8b' deepseek generate" mlx-chat-deepseek="_mlx_model 'deepseek-r1-8b' deepseek chat"
alias mlx-phi4="_mlx_model 'phi4-14b' phi4 generate" mlx-chat-phi4="_mlx_model 'phi4-14b' phi4 chat"
alias mlx-mistral7b="_mlx_model 'mistral-7b' mistral7b generate" mlx-chat-mistral7b="_mlx_model 'mistral-7b' mistral7b chat"
fi
# <<< mlxtasks <<<
