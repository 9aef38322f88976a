# MLX commands for fish. No subprocess runs when this is read; re-reading it is harmless.
set -gx MLX_VENV_PATH @@VENV@@
set -gx MLX_MODELS_PATH @@MODELS@@

# bin/python links to the Python the venv was made from: with that one gone, every tool in it fails.
function __mlx_require --argument-names tool
    test -x "$MLX_VENV_PATH/bin/$tool"; and test -x "$MLX_VENV_PATH/bin/python"; and return 0
    if test -e "$MLX_VENV_PATH/bin/$tool"; or test -L "$MLX_VENV_PATH/bin/$tool"
        printf 'mlx: the venv %s has lost its Python (removed or upgraded); run: %s\n' "$MLX_VENV_PATH" @@SETUP@@ >&2
    else
        printf 'mlx: %s is not in %s; run: %s\n' $tool "$MLX_VENV_PATH" @@SETUP@@ >&2
    end
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

function mlxtasks --description 'Run an mlxtasks task (as invoke does in the checkout)'
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" $argv
end

# MLX_SHELL: the status checks this shell's config, whatever $SHELL says.
function mlx-status --description 'Show the MLX venv, versions and models'
    __mlx_require python; and env MLX_SHELL=fish "$MLX_VENV_PATH/bin/python" -m mlxtasks.status $argv
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

function mlx-search --description 'Search the hub for MLX models that fit this machine'
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" models.search $argv
end

# `mlx-serve [MODEL] [options]`: the default model when none is named.
function mlx-serve --description 'Serve an MLX model at an OpenAI-compatible URL'
    if not set -q argv[1]; or string match -q -- '-*' $argv[1]
        set argv default $argv
    end
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" serve --venv "$MLX_VENV_PATH" --models "$MLX_MODELS_PATH" $argv
end

function mlx-serve-stop --description 'Stop the MLX server'
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" serve.stop $argv
end

function mlx-ps --description 'The models the MLX server has loaded'
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" serve.ps $argv
end

# One answer on stdout (`mlx-qwen7b "question" [options]`, `-` reads stdin), or a chat session.
# `mlx-ask MODEL "question"` and `mlx-chat [MODEL]` take any installed model (the default when none is named).
function mlx-ask --description 'One-shot answer from an installed MLX model'
    if test (count $argv) -lt 2
        echo 'usage: mlx-ask MODEL "question" [options] (- reads the question from stdin)' >&2
        return 2
    end
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" chat.ask --venv "$MLX_VENV_PATH" --models "$MLX_MODELS_PATH" --model $argv
end

function mlx-chat --description 'Chat with an installed MLX model'
    if not set -q argv[1]; or string match -q -- '-*' $argv[1]
        set argv default $argv
    end
    __mlx_require mlxtasks; and "$MLX_VENV_PATH/bin/mlxtasks" chat --venv "$MLX_VENV_PATH" --models "$MLX_MODELS_PATH" $argv
end
@@BEGIN_MODEL@@
function mlx-@@ALIAS@@ --description 'One-shot answer from @@ALIAS@@'
    mlx-ask @@ALIAS@@ $argv
end
function mlx-chat-@@ALIAS@@ --description 'Chat with @@ALIAS@@'
    mlx-chat @@ALIAS@@ $argv
end
@@END_MODEL@@
