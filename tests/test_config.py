from pathlib import Path

import pytest
from invoke import Config, Context

from mlxtasks import config, fit
from mlxtasks.errors import MlxTasksError
from mlxtasks.tasks import ns
from mlxtasks.tasks._common import settings

from .support.helpers import BIN, invoke, run


def test_defaults_derive_from_the_home_given_at_resolve_time(tmp_path):
    s = config.resolve({}, home=tmp_path)
    assert s.venv == tmp_path / "venv-mlx"
    assert s.workspace == tmp_path / "workspace"
    assert s.models == tmp_path / "workspace" / "mlx"
    assert s.installer == "auto" and s.backend == "auto"
    assert s.min_disk_gb == 10 and s.warn_disk_gb == 20 and s.warn_ram_gb == 16


def test_config_beats_defaults_and_flags_beat_config(tmp_path):
    section = {"venv": "~/envs/mlx", "installer": "pip", "min_disk_gb": 5}
    s = config.resolve(section, home=tmp_path)
    assert (s.venv, s.installer, s.min_disk_gb) == (tmp_path / "envs" / "mlx", "pip", 5)
    s = config.resolve(section, home=tmp_path, venv="/opt/mlx", installer="uv", python=None)
    assert (s.venv, s.installer, s.min_disk_gb) == (Path("/opt/mlx"), "uv", 5)


def test_home_is_read_when_resolving_not_when_importing(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.resolve({}).venv == tmp_path / "venv-mlx"


@pytest.mark.parametrize(
    "section, words",
    [
        ({"installer": "conda"}, "Config key 'mlx.installer' must be one of auto, uv, pip"),
        ({"backend": "rocm"}, "Config key 'mlx.backend' must be one of"),
        ({"min_disk_gb": "lots"}, "Config key 'mlx.min_disk_gb' must be a number, got 'lots'"),
        ({"warn_ram_gb": -1}, "Config key 'mlx.warn_ram_gb' must be a number from 0 to 1e+06"),
        ({"retry_delay_s": float("nan")}, "Config key 'mlx.retry_delay_s' must be a number from 0 to 300"),
        ({"retry_delay_s": float("inf")}, "Config key 'mlx.retry_delay_s' must be a number from 0 to 300"),
        ({"retry_delay_s": 1e308}, "Config key 'mlx.retry_delay_s' must be a number from 0 to 300"),
        ({"venv": 42}, "Config key 'mlx.venv' must be a folder path"),
        ({"packages": [1, 2]}, "Config key 'mlx.packages' must be a list of package names"),  # checked when read
        ({"vnev": "~/x"}, "Unknown config key 'mlx.vnev'"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, section, words):
    with pytest.raises(MlxTasksError) as caught:
        config.resolve(section, home=tmp_path).packages
    assert words in caught.value.message
    assert "invoke.yaml" in caught.value.fix


def test_invalid_flag_names_the_flag(tmp_path):
    with pytest.raises(MlxTasksError) as caught:
        config.resolve({}, home=tmp_path, installer="conda")
    assert caught.value.message.startswith("--installer must be one of auto, uv, pip")


def _context(tmp_path, yaml_text=None, env=None, monkeypatch=None):
    """A Config loaded as Invoke's CLI loads one: collection defaults, the project's invoke.yaml, env."""
    cfg = Config(project_location=str(tmp_path))
    cfg.load_collection(ns.configuration())
    if yaml_text is not None:
        (tmp_path / "invoke.yaml").write_text(yaml_text)
        cfg.load_project()
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    cfg.load_shell_env()
    return Context(config=cfg)


def test_invoke_config_files_and_environment_reach_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    c = _context(tmp_path, "mlx:\n  venv: ~/from-file\n  installer: pip\n")
    assert settings(c).venv == tmp_path / "from-file"
    c = _context(tmp_path, "mlx:\n  venv: ~/from-file\n", {"INVOKE_MLX_VENV": "/from/env"}, monkeypatch)
    assert settings(c).venv == Path("/from/env")  # env beats files
    assert settings(c, venv="/from/flag").venv == Path("/from/flag")  # flags beat both


def test_a_wrong_type_in_a_config_file_is_reported_with_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    c = _context(tmp_path, "mlx:\n  warn_disk_gb: [1, 2]\n")
    with pytest.raises(MlxTasksError, match="mlx.warn_disk_gb"):
        settings(c)


@pytest.mark.parametrize(
    "name, value, read, expected",
    [
        ("INVOKE_MLX_SERVE_PORT", "9000", "serve_port", 9000),
        ("INVOKE_MLX_MIN_DISK_GB", "2.5", "min_disk_gb", 2.5),
        ("INVOKE_MLX_PACKAGES", "mlx numpy", "packages", ("mlx", "numpy")),
        ("INVOKE_MLX_VENV", "/opt/mlx", "venv", Path("/opt/mlx")),
    ],
)
def test_environment_variables_set_settings(tmp_path, name, value, read, expected):
    assert getattr(config.resolve({"venv": "~/file"}, home=tmp_path, environ={name: value}), read) == expected


def test_environment_variables_set_bench_keys(tmp_path):
    s = config.resolve({"bench": {"runs": 5, "warmup": 2}}, home=tmp_path, environ={"INVOKE_MLX_BENCH_RUNS": "7"})
    assert s.bench.runs == 7


@pytest.mark.parametrize(
    "name, value, read, words",
    [
        (
            "INVOKE_MLX_SERVE_PORT",
            "abc",
            "serve_port",
            "INVOKE_MLX_SERVE_PORT must be a port number from 1 to 65535, got 'abc'.",
        ),
        (
            "INVOKE_MLX_SERVE_PORT",
            "-1",
            "serve_port",
            "INVOKE_MLX_SERVE_PORT must be a port number from 1 to 65535, got '-1'.",
        ),
        (
            "INVOKE_MLX_SERVE_PORT",
            "0",
            "serve_port",
            "INVOKE_MLX_SERVE_PORT must be a port number from 1 to 65535, got '0'.",
        ),
        (
            "INVOKE_MLX_PULL_STALL_TIMEOUT_S",
            "0",
            "pull_stall_timeout_s",
            "INVOKE_MLX_PULL_STALL_TIMEOUT_S must be a number above 0, up to 3600, got '0'.",
        ),
        ("INVOKE_MLX_RETRY_DELAY_S", "soon", "retry_delay_s", "INVOKE_MLX_RETRY_DELAY_S must be a number, got 'soon'."),
        (
            "INVOKE_MLX_BENCH_RUNS",
            "2.5",
            "bench",
            "INVOKE_MLX_BENCH_RUNS must be a whole number of 1 or more, got '2.5'.",
        ),
        ("INVOKE_MLX_VNEV", "/x", "venv", "INVOKE_MLX_VNEV names no setting of mlxtasks."),
        ("INVOKE_MLX_BENCH_FOO", "1", "bench", "INVOKE_MLX_BENCH_FOO names no setting of bench."),
        (
            "INVOKE_MLX_PACKAGES",
            "numpy;",
            "packages",
            "INVOKE_MLX_PACKAGES has an entry that is not a package requirement: 'numpy;'.",
        ),
        (
            "INVOKE_MLX_CATALOG",
            "x",
            "catalog",
            "INVOKE_MLX_CATALOG cannot set catalog, a section that only a config file can hold.",
        ),
    ],
)
def test_a_bad_environment_value_is_a_sentence_naming_the_variable(tmp_path, name, value, read, words):
    with pytest.raises(MlxTasksError) as caught:
        s = config.resolve({}, home=tmp_path, environ={name: value})
        getattr(s, read)
    assert caught.value.message == words


def test_a_bad_environment_value_gets_a_fix_about_the_variable(tmp_path):
    with pytest.raises(MlxTasksError) as caught:
        config.resolve({}, home=tmp_path, environ={"INVOKE_MLX_MIN_DISK_GB": "lots"})
    assert caught.value.fix == "unset INVOKE_MLX_MIN_DISK_GB, or set it to a number"


def test_a_variable_never_hides_a_broken_section_of_a_file(tmp_path):
    s = config.resolve({"bench": "lots"}, home=tmp_path, environ={"INVOKE_MLX_BENCH_RUNS": "3"})
    with pytest.raises(MlxTasksError, match="Config key 'mlx.bench' must be a mapping, got 'lots'."):
        s.bench


@pytest.mark.slow
def test_the_mlxtasks_program_reads_a_variable_for_a_key_a_file_also_sets(home):
    """Invoke would cast INVOKE_MLX_PACKAGES to the file's list type and stop every task with a traceback."""
    (home / ".invoke.yaml").write_text("mlx:\n  packages: [mlx-lm]\n  serve_port: 8080\n")
    done = run([str(BIN / "mlxtasks"), "serve.stop"], home, INVOKE_MLX_PACKAGES="mlx-lm numpy")
    assert done.returncode == 0 and done.stdout == "No server is running.\n", done.stderr


@pytest.mark.slow
def test_a_task_run_with_a_bad_environment_value_says_so_without_a_traceback(tmp_path):
    done = invoke("preflight", home=tmp_path, INVOKE_MLX_MIN_DISK_GB="abc")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "INVOKE_MLX_MIN_DISK_GB must be a number, got 'abc'." in done.stderr


BROKEN_SECTIONS = {
    "bench": {"bench": "lots"},
    "router": {"router": {"code": 5}},
    "serve": {"serve_port": "abc"},
    "catalog": {"catalog": [1]},
}
# The commands that undo or look, each with the feature sections it reads.
RECOVERY = {"serve.stop": set(), "shell.remove": set(), "uninstall": set(), "models.list": {"catalog"}}


@pytest.mark.parametrize("feature", BROKEN_SECTIONS)
@pytest.mark.parametrize("command", RECOVERY)
def test_a_broken_feature_section_stops_only_the_tasks_that_read_it(home, monkeypatch, feature, command):
    from invoke import Config, Context

    monkeypatch.setenv("HOME", str(home))
    task = ns[command]
    c = Context(Config(overrides={"mlx": BROKEN_SECTIONS[feature]}))
    arguments = {"dry_run": True} if command in ("shell.remove", "uninstall") else {}
    if feature in RECOVERY[command]:
        with pytest.raises(MlxTasksError):
            task.body(c, **arguments)
    else:
        task.body(c, **arguments)


@pytest.mark.slow
def test_a_broken_bench_section_leaves_serve_stop_working_from_the_command_line(home):
    (home / ".invoke.yaml").write_text("mlx:\n  bench: {runs: lots}\n")
    assert invoke("serve.stop", home=home).returncode == 0
    done = invoke("bench.history", home=home)
    assert done.returncode == 1
    assert (
        done.stderr.splitlines()[0]
        == "[error] Config key 'mlx.bench.runs' must be a whole number of 1 or more, got 'lots'."
    )


# Invoke itself parses ~/.invoke.yaml (and merges a top level that is no mapping) before it loads any
# of mlxtasks' code, so only the mlxtasks program can name those.


BROKEN_FILES = [
    ("mlx: [1\n", "{file} is not valid YAML at line 2."),
    ("- a\n", "{file} holds a list, not a mapping of settings."),
]


@pytest.mark.slow
@pytest.mark.parametrize("text, words", BROKEN_FILES)
def test_a_config_file_invoke_cannot_load_is_named_with_its_fix(home, text, words):
    file = home / ".invoke.yaml"
    file.write_text(text)
    done = run([str(BIN / "mlxtasks"), "models.list"], home)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[0] == "[error] " + words.format(file=file)
    assert f"remove {file}" in done.stderr
    assert file.read_text() == text


def test_xdg_config_home_has_one_rule_for_every_file_that_follows_it(tmp_path, monkeypatch):
    """An absolute XDG_CONFIG_HOME is the config folder of mlxtasks' own files, fish's block and the systemd unit;
    a relative one is ignored, as the XDG spec says, by all three alike."""
    from mlxtasks import service, shellblock

    home = tmp_path / "home"
    monkeypatch.setattr(service.platform, "system", lambda: "Linux")  # the systemd unit, on a Mac too
    for value, base in [
        ("", home / ".config"),
        ("relative/x", home / ".config"),
        (str(tmp_path / "xdg"), tmp_path / "xdg"),
    ]:
        monkeypatch.setenv("XDG_CONFIG_HOME", value)
        assert config.config_home(home) == base
        assert config.config_dir(home) == base / "mlxtasks"
        assert (
            shellblock.rc_target("fish", "linux", home, {"XDG_CONFIG_HOME": value}).path
            == base / "fish" / "conf.d" / "mlxtasks.fish"
        )
        assert service.local_target(home).path == base / "systemd" / "user" / service.UNIT


def test_a_relative_xdg_state_home_is_ignored_as_a_relative_xdg_config_home_is(tmp_path):
    """It would put pid files and logs wherever the command happened to run (the XDG spec says to ignore it)."""
    home = tmp_path / "home"
    assert config.state_dir(home, {"XDG_STATE_HOME": "relative/x"}) == home / ".local/state/mlxtasks"
    assert config.state_dir(home, {"XDG_STATE_HOME": str(tmp_path / "x")}) == tmp_path / "x" / "mlxtasks"


@pytest.mark.parametrize("given, read", [(None, 0), (0, 0), ("off", 0), (4, 4), (8, 8), ("8", 8)])
def test_kv_bits_is_4_or_8_or_off(tmp_path, given, read):
    flags = {} if given is None else {"kv_bits": given}
    s = config.resolve({}, home=tmp_path, **flags)
    assert s.kv_bits == read
    assert (s.kv.group_size, s.kv.start) == (64, 5000)  # mlx_lm's defaults


@pytest.mark.parametrize(
    "where, value, words",
    [
        ("flag", 3, "--kv-bits must be 4 or 8 (0 or off: a 16-bit KV cache), got 3."),
        ("flag", 16, "--kv-bits must be 4 or 8"),
        ("flag", True, "--kv-bits must be 4 or 8"),
        ("config", "eight", "Config key 'mlx.kv_bits' must be 4 or 8"),
        ("env", "2", "INVOKE_MLX_KV_BITS must be 4 or 8"),
    ],
)
def test_another_kv_bits_is_refused_naming_where_it_came_from(tmp_path, where, value, words):
    given = {
        "flag": {"kv_bits": value},
        "config": {"config": {"kv_bits": value}},
        "env": {"environ": {"INVOKE_MLX_KV_BITS": value}},
    }[where]
    s = config.resolve(home=tmp_path, **given)
    with pytest.raises(MlxTasksError) as caught:
        s.kv_bits  # noqa: B018 (checked when read)
    assert caught.value.message.startswith(words)


@pytest.mark.parametrize("key, value", [("kv_group_size", 48), ("kv_group_size", "big"), ("quantized_kv_start", -1)])
def test_the_quantized_caches_group_size_and_start_are_checked(tmp_path, key, value):
    with pytest.raises(MlxTasksError, match=f"mlx.{key}"):
        config.resolve({key: value}, home=tmp_path).kv  # noqa: B018


def test_a_models_catalogue_kv_bits_wins_over_mlx_kv_bits_and_the_flag_over_both(tmp_path):
    from mlxtasks import catalog

    entries = {"qwen7b": {"kv_bits": 4}}
    qwen7b, mistral = (catalog.find(name, catalog.load(entries)) for name in ("qwen7b", "mistral7b"))
    configured = config.resolve({"kv_bits": 8, "catalog": entries}, home=tmp_path)
    assert (configured.kv_bits_for(qwen7b), configured.kv_bits_for(mistral), configured.kv_bits_for(None)) == (4, 8, 8)
    flagged = config.resolve({"kv_bits": 8, "catalog": entries}, home=tmp_path, kv_bits=0)
    assert (flagged.kv_bits_for(qwen7b), flagged.kv_bits_for(mistral)) == (0, 0)
    assert configured.kv_for(qwen7b) == fit.KV(4, 64, 5000)
