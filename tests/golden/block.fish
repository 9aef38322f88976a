# >>> mlxtasks >>>
# managed by mlxtasks; edit via invoke shell.install
# MLX commands for fish. No subprocess runs when this is read; re-reading it is harmless.
set -gx MLX_VENV_PATH '/home/u/venv-mlx'
set -gx MLX_MODELS_PATH '/home/u/workspace/mlx'

function __mlx_require --argument-names tool
    test -x "$MLX_VENV_PATH/bin/$tool"; and return 0
    printf 'mlx: %s is not in %s; run: invoke setup\n' $tool "$MLX_VENV_PATH" >&2
    return 1
end

function mlx-activate --description 'Activate the MLX venv'
    __mlx_require python; and source "$MLX_VENV_PATH/bin/activate.fish"
end

function mlx-deactivate --description 'Deactivate the MLX venv'
    if set -q VIRTUAL_ENV; and test "$VIRTUAL_ENV" -ef "$MLX_VENV_PATH"; and functions -q deactivate
        deactivate
    else
        echo "mlx-deactivate: the MLX venv is not active" >&2
        return 1
    end
end

function mlx-status --description 'Show the MLX venv, versions and models'
    __mlx_require python; and "$MLX_VENV_PATH/bin/python" -m mlxtasks.runtime.status $argv
end

function mlx-models --description 'List installed and available MLX models'
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" models.list $argv
end

function mlx-validate --description 'Check the MLX environment and models'
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" validate $argv
end

function mlx-pull --description 'Download an MLX model'
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" models.pull $argv
end

# __mlx_model FOLDER ALIAS generate|chat [ARGS]: `mlx-qwen7b "question" [options]` means --prompt "question" [options].
function __mlx_model --argument-names folder alias command
    set -e argv[1..3]
    if not test -d "$MLX_MODELS_PATH/$folder"
        printf 'mlx: the model %s is not downloaded; run: mlx-pull %s\n' $alias $alias >&2
        return 1
    end
    __mlx_require mlx_lm.$command; or return 1
    if test "$command" = generate; and set -q argv[1]; and not string match -q -- '-*' $argv[1]
        set -l prompt $argv[1]
        set -e argv[1]
        "$MLX_VENV_PATH/bin/mlx_lm.generate" --model "$MLX_MODELS_PATH/$folder" --prompt "$prompt" $argv
    else
        "$MLX_VENV_PATH/bin/mlx_lm.$command" --model "$MLX_MODELS_PATH/$folder" $argv
    end
end
function mlx-qwen7b --description 'One-shot answer from qwen7b'
    __mlx_model 'qwen25-coder-7b' qwen7b generate $argv
end
function mlx-chat-qwen7b --description 'Chat with qwen7b'
    __mlx_model 'qwen25-coder-7b' qwen7b chat $argv
end
function mlx-qwen32b --description 'One-shot answer from qwen32b'
    __mlx_model 'qwen25-coder-32b' qwen32b generate $argv
end
function mlx-chat-qwen32b --description 'Chat with qwen32b'
    __mlx_model 'qwen25-coder-32b' qwen32b chat $argv
end
function mlx-deepseek --description 'One-shot answer from deepseek'
    __mlx_model 'deepseek-r1-8b' deepseek generate $argv
end
function mlx-chat-deepseek --description 'Chat with deepseek'
    __mlx_model 'deepseek-r1-8b' deepseek chat $argv
end
function mlx-phi4 --description 'One-shot answer from phi4'
    __mlx_model 'phi4-14b' phi4 generate $argv
end
function mlx-chat-phi4 --description 'Chat with phi4'
    __mlx_model 'phi4-14b' phi4 chat $argv
end
function mlx-mistral7b --description 'One-shot answer from mistral7b'
    __mlx_model 'mistral-7b' mistral7b generate $argv
end
function mlx-chat-mistral7b --description 'Chat with mistral7b'
    __mlx_model 'mistral-7b' mistral7b chat $argv
end
# <<< mlxtasks <<<
