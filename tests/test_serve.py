"""The server's pure core (which model, URL, argv, service files) and its process handling with real processes."""

import contextlib
import json
import os
import plistlib
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from invoke import Config, Context, Exit, MockContext, Result

from mlxtasks import catalog, config, serve, service, store
from mlxtasks.errors import MlxTasksError
from mlxtasks.facts import GIB, HostFacts
from mlxtasks.protocol import ServeSpec, duration, host_name, is_loopback
from mlxtasks.tasks import ns
from mlxtasks.tasks import serve as serve_tasks
from mlxtasks.tasks.setup import uninstall

LINUX = HostFacts(os="linux", os_version="6", machine="x86_64", chip="x", ram_total=64 * GIB, ram_available=32 * GIB)
SMALL_MAC = HostFacts(
    os="darwin", os_version="15.1", machine="arm64", chip="Apple M1", ram_total=8 * GIB, ram_available=6 * GIB
)


@pytest.fixture
def settings(tmp_path):
    s = config.resolve({}, home=tmp_path)
    (s.models / "qwen25-coder-32b").mkdir(parents=True)
    (s.models / "qwen25-coder-32b" / "config.json").write_text("{}")
    return s


def test_the_model_is_found_by_alias_and_default_means_the_configured_one(settings):
    model, folder = serve.choose_model(settings, "qwen32b", LINUX, force=False)
    assert (model.alias, folder) == ("qwen32b", settings.models / "qwen25-coder-32b")
    with pytest.raises(MlxTasksError, match="qwen7b is not downloaded") as caught:
        serve.choose_model(settings, "default", LINUX, force=False)
    assert caught.value.fix == "invoke models.pull qwen7b"


def test_unknown_and_too_big_models_are_refused_with_a_fix(settings):
    with pytest.raises(MlxTasksError, match="no model called 'gpt4'"):
        serve.choose_model(settings, "gpt4", LINUX, force=False)
    with pytest.raises(
        MlxTasksError, match=r"qwen32b needs about 20.7 GB of memory and this machine can give a model 5.7 GB"
    ) as caught:
        serve.choose_model(settings, "qwen32b", SMALL_MAC, force=False)
    assert caught.value.fix.endswith("invoke serve qwen32b --force")
    assert serve.choose_model(settings, "qwen32b", SMALL_MAC, force=True)[0].alias == "qwen32b"


def test_the_server_gets_its_spec_with_the_catalogue_sampling_the_models_names_and_no_cors_by_default(settings):
    folder = settings.models / "qwen25-coder-7b"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    alias, _, argv, _ = serve.prepare(settings, "qwen7b", None, LINUX, force=False)
    assert alias == "qwen7b" and argv[:3] == [str(settings.venv_python), "-m", "mlxtasks.runtime.server"]
    spec = ServeSpec.from_json(argv[3])
    assert (spec.alias, spec.model, spec.host, spec.port, spec.allowed_origins) == (
        "qwen7b",
        str(folder),
        "127.0.0.1",
        8080,
        [],
    )
    assert (spec.temperature, spec.top_p, spec.max_tokens) == (0.7, 0.8, 2048)
    assert set(spec.names) == {"qwen25-coder-7b", "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit", str(folder)}
    assert spec.log_file == str(serve.log_path(settings.state)) and spec.exit_file == str(
        serve.exit_path(settings.state)
    )
    # Every installed model is in the table, with the memory it needs; the budget is the machine's.
    sizes = {m.alias: store.size_on_disk(Path(m.folder)) for m in spec.installed}
    assert {m.alias: m.need for m in spec.installed} == {
        a: int(size * 1.1) for a, size in sizes.items()
    }  # shape unknown
    assert sorted(sizes) == ["qwen32b", "qwen7b"] and spec.budget == catalog.memory_budget(LINUX)
    assert next(m for m in spec.installed if m.alias == "qwen7b") == spec.preloaded()
    assert (
        spec.keep_alive,
        ServeSpec.from_json(serve.prepare(settings, "qwen7b", None, LINUX, force=True)[2][3]).budget,
    ) == (300, 0)
    none = ServeSpec.from_json(serve.prepare(settings, "none", None, LINUX, force=False)[2][3])
    assert (none.alias, none.preloaded(), len(none.installed)) == ("", None, 2)
    assert none.prompt_cache_bytes == 2 << 30
    origins = config.resolve(
        {"serve_allowed_origins": ["http://a", "http://b"], "serve_keep_alive": "1h30m", "serve_prompt_cache_gb": 0.5},
        home=settings.home,
    )
    spec = ServeSpec.from_json(serve.prepare(origins, "none", None, LINUX, force=False)[2][3])
    assert (spec.allowed_origins, spec.keep_alive, spec.prompt_cache_bytes) == (["http://a", "http://b"], 5400, 1 << 29)


def test_every_limit_of_the_server_comes_from_its_config_key(settings):
    # The spec's own field defaults are not what a started server runs with: config.DEFAULTS is.
    def started(**keys):
        return ServeSpec.from_json(
            serve.prepare(config.resolve(keys, home=settings.home), "none", None, LINUX, False)[2][3]
        )

    default = started()
    assert (
        default.batch_size,
        default.queue_limit,
        default.prefill_chunk,
        default.prompt_caches,
        default.max_body_bytes,
        default.log_max_bytes,
    ) == (8, 32, 2048, 10, 4 << 20, 10 << 20)
    spec = started(
        serve_batch_size=2,
        serve_queue_limit="5",
        serve_prefill_chunk=256,
        serve_prompt_caches=0,
        serve_max_body_mb=0.5,
        serve_log_max_mb=1,
    )
    assert (
        spec.batch_size,
        spec.queue_limit,
        spec.prefill_chunk,
        spec.prompt_caches,
        spec.max_body_bytes,
        spec.log_max_bytes,
    ) == (2, 5, 256, 0, 1 << 19, 1 << 20)


@pytest.mark.parametrize(
    "key, given",
    [
        ("serve_batch_size", 0),
        ("serve_batch_size", 2.5),
        ("serve_queue_limit", "many"),
        ("serve_prefill_chunk", 8),
        ("serve_prompt_caches", -1),
        ("serve_max_body_mb", "nan"),
    ],
)
def test_a_bad_server_limit_is_a_sentence_naming_its_key(tmp_path, key, given):
    with pytest.raises(MlxTasksError, match=f"Config key 'mlx.{key}' must be a"):
        getattr(config.resolve({key: given}, home=tmp_path), key)


@pytest.mark.parametrize(
    "given, seconds",
    [
        (300, 300),
        ("300", 300),
        ("5m", 300),
        ("1h30m", 5400),
        ("90s", 90),
        ("-1", -1),
        (-1, -1),
        ("0", 0),
        ("250ms", 0.25),
        ("-5m", -300),
    ],
)
def test_keep_alive_takes_seconds_or_an_ollama_duration(given, seconds):
    assert duration(given) == seconds


@pytest.mark.parametrize("given", ["soon", "5x", "", True, [5], "m5"])
def test_anything_else_is_not_a_keep_alive(given, tmp_path):
    with pytest.raises(ValueError):
        duration(given)
    with pytest.raises(MlxTasksError, match="mlx.serve_keep_alive' must be seconds, or a duration such as"):
        config.resolve({"serve_keep_alive": given}, home=tmp_path).serve_keep_alive


def test_ps_shows_each_loaded_model_its_memory_idle_time_and_when_it_unloads():
    answer = {
        "budget": 8 * 10**9,
        "models": [
            {
                "model": "qwen7b",
                "memory": 4_900_000_000,
                "requests": 0,
                "idle_s": 75.2,
                "keep_alive": 300,
                "unloads_in": 224.8,
            },
            {
                "model": "phi4",
                "memory": 2_000_000_000,
                "requests": 2,
                "idle_s": 0.0,
                "keep_alive": 300,
                "unloads_in": None,
            },
            {
                "model": "tiny",
                "memory": 300_000_000,
                "requests": 0,
                "idle_s": 3.0,
                "keep_alive": -1,
                "unloads_in": None,
            },
        ],
        "waiting": {"mistral7b": 2},
    }
    assert serve.ps_text(answer).splitlines() == [
        "MODEL   MEMORY  IDLE           UNLOADS",
        "qwen7b  4.9 GB  1 min 15 s     in 3 min 44 s",
        "phi4    2.0 GB  answering (2)  5 min after its last answer",
        "tiny    0.3 GB  3 s            never (kept loaded)",
        "7.2 GB in use of a budget of 8.0 GB",
        "waiting for mistral7b to load: 2 request(s)",
    ]
    assert (
        serve.ps_text({"budget": 0, "models": [], "waiting": {}})
        == "No model is loaded; a request that names an installed model loads it."
    )


def test_port_config_and_flag_and_their_errors(tmp_path, capsys):
    assert config.resolve({}, home=tmp_path).serve_port == 8080
    assert config.resolve({"serve_port": 9000}, home=tmp_path, serve_port="9100").serve_port == 9100
    with pytest.raises(MlxTasksError, match="Config key 'mlx.serve_port' must be a port number from 1 to 65535"):
        config.resolve({"serve_port": 70000}, home=tmp_path).serve_port
    with pytest.raises(Exit):
        serve_tasks.start(mock_context(Result()), "qwen7b", port="abc")
    assert capsys.readouterr().err == (
        "[error] --port must be a port number from 1 to 65535, got 'abc'.\n"
        "  Fix: pass a port number from 1 to 65535 to --port\n"
    )
    for port in ("-1", "0"):
        with pytest.raises(MlxTasksError, match=f"--serve-port must be a port number from 1 to 65535, got '{port}'"):
            config.resolve({}, home=tmp_path, serve_port=port).serve_port
    with pytest.raises(MlxTasksError, match="'mlx.serve_allowed_origins' must be a list of origins"):
        config.resolve({"serve_allowed_origins": [3]}, home=tmp_path).serve_allowed_origins


def test_state_lives_in_xdg_state_home_or_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert config.resolve({}, home=tmp_path).state == tmp_path / ".local" / "state" / "mlxtasks"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert config.resolve({}, home=tmp_path).state == tmp_path / "xdg" / "mlxtasks"


@pytest.mark.parametrize(
    "host, url",
    [
        ("127.0.0.1", "http://127.0.0.1:8080/v1"),
        ("0.0.0.0", "http://127.0.0.1:8080/v1"),
        ("::1", "http://[::1]:8080/v1"),
        ("::", "http://[::1]:8080/v1"),
        ("192.168.1.5", "http://192.168.1.5:8080/v1"),
    ],
)
def test_clients_on_this_machine_get_a_reachable_url(host, url):
    assert serve.base_url(host, 8080) == url


def test_loopback_names_and_host_headers():
    assert all(map(is_loopback, ["127.0.0.1", "127.3.4.5", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "evil.example", "localhost.evil.example"]))
    assert [host_name(h) for h in ["127.0.0.1:8080", "[::1]:8080", "LocalHost", "[::1]", "evil.example:80"]] == [
        "127.0.0.1",
        "::1",
        "localhost",
        "::1",
        "evil.example",
    ]


def test_the_client_example_is_a_working_curl_line():
    line = serve.client_example(serve.Server(1, "qwen7b", "127.0.0.1", 8080, 0.0), "qwen7b")
    assert line.startswith("curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' -d '")
    assert json.loads(line.split(" -d ")[1].strip("'"))["model"] == "qwen7b"


def test_a_port_in_use_or_an_unknown_host_is_one_sentence():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MlxTasksError, match=f"Port {port} on 127.0.0.1 is already in use") as caught:
            serve.check_port("127.0.0.1", port, retry="invoke serve qwen7b")
        assert caught.value.fix == f"invoke serve qwen7b --port {port + 1} (or set mlx.serve_port)"
    serve.check_port("127.0.0.1", port, retry="invoke serve qwen7b")  # free again
    for elsewhere in ("no-such-host.invalid", "192.0.2.1"):  # a name that does not resolve; an address not ours
        with pytest.raises(MlxTasksError, match="not an address of this machine"):
            serve.check_port(elsewhere, 8080, retry="invoke serve qwen7b")


def test_a_program_on_every_interface_is_seen_by_a_loopback_start():
    """On a Mac, binding 127.0.0.1 beside a program listening on *:PORT succeeds (BSD sockets), so the check
    connects where our clients would: the program answering there is what it names."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            MlxTasksError,
            match=f"Port {port} on 127.0.0.1 is already in use by another program, "
            f"which answers at http://127.0.0.1:{port}.",
        ):
            serve.check_port("127.0.0.1", port, retry="invoke serve qwen7b")
    with socket.socket() as bound_only:  # bound, not listening: nothing answers, the bind alone says no
        bound_only.bind(("127.0.0.1", 0))
        port = bound_only.getsockname()[1]
        with pytest.raises(MlxTasksError, match=f"Port {port} on 127.0.0.1 is already in use by another program.$"):
            serve.check_port("127.0.0.1", port, retry="invoke serve qwen7b")


def spawn(code):
    """A real process standing in for a server; it says 'ready' once its signal handling is set."""
    process = subprocess.Popen(
        [sys.executable, "-c", code + "; print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "ready\n"
    return process


def record(state, process):
    state.mkdir(parents=True, exist_ok=True)
    server = serve.Server(process.pid, "qwen7b", "127.0.0.1", 8080, psutil.Process(process.pid).create_time())
    serve.record_path(state).write_text(json.dumps(server.__dict__))
    return server


def test_a_record_is_trusted_only_while_its_own_process_lives(tmp_path):
    process = spawn("import time")
    server = record(tmp_path, process)
    assert serve.running(tmp_path) == server
    with pytest.raises(
        MlxTasksError, match=f"A server is already running: qwen7b at http://127.0.0.1:8080/v1 \\(pid {process.pid}\\)"
    ):
        serve.refuse_second(tmp_path)
    # The same pid with another start time is a different process.
    serve.record_path(tmp_path).write_text(json.dumps({**server.__dict__, "started": server.started - 100}))
    assert serve.running(tmp_path) is None and not serve.record_path(tmp_path).exists()
    record(tmp_path, process)
    process.kill()
    process.wait()
    assert serve.running(tmp_path) is None and not serve.record_path(tmp_path).exists()
    serve.record_path(tmp_path).write_text("{not json")
    assert serve.running(tmp_path) is None and not serve.record_path(tmp_path).exists()


def test_a_server_gone_without_stop_is_reported_as_crashed_with_its_exit_status_and_log(tmp_path):
    process = spawn("import time")
    record(tmp_path, process)
    assert serve.crashed(tmp_path) is None  # it runs
    process.kill()
    process.wait()
    serve.log_path(tmp_path).write_text("loading\nTraceback: boom\n")
    assert serve.crashed(tmp_path) == (
        f"The server for qwen7b (pid {process.pid}) crashed (exit status unknown: "
        "killed, or a crash in native code). The log's last lines:\n  loading\n  Traceback: boom"
    )
    serve.log_path(tmp_path).write_text(
        'loading\nTraceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "    load()\nValueError: config.json is not a mapping\n"
    )
    assert serve.crashed(tmp_path).endswith(
        "crashed (exit status unknown: killed, or a crash in native code). The log's "
        "last lines:\n  loading\n  ValueError: config.json is not a mapping (the "
        f"traceback is in {serve.log_path(tmp_path)})"
    )
    serve.exit_path(tmp_path).write_text('{"status": 70, "reason": "RuntimeError: boom"}')
    assert f"(pid {process.pid}) crashed (exit status 70: RuntimeError: boom)." in serve.crashed(tmp_path)
    serve.exit_path(tmp_path).write_text('{"status": 0, "reason": "stopped"}')
    assert serve.crashed(tmp_path) is None  # a stop by a signal (Ctrl-C, systemctl stop) is no crash
    assert serve.running(tmp_path) is None and serve.crashed(tmp_path) is None  # reported once, then cleaned up


@pytest.mark.slow
def test_stop_terms_then_kills_and_removes_the_record(tmp_path):
    polite = spawn("import time")
    record(tmp_path, polite)
    assert serve.stop(tmp_path).pid == polite.pid
    assert not psutil.pid_exists(polite.pid)  # stop waited for it (and reaped our child)
    stubborn = spawn("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    record(tmp_path, stubborn)
    assert serve.stop(tmp_path, wait=2).pid == stubborn.pid
    assert not psutil.pid_exists(stubborn.pid)  # TERM was ignored, so KILL
    assert not serve.record_path(tmp_path).exists()
    assert serve.stop(tmp_path) is None


def test_the_log_tail_is_indented_and_says_when_there_is_none(tmp_path):
    assert serve.tail(tmp_path) == "  (no log)"
    serve.log_path(tmp_path).write_text("".join(f"line {n}\n" for n in range(40)))
    assert serve.tail(tmp_path, 3) == "  line 37\n  line 38\n  line 39"


def test_uptime_reads_well():
    server = serve.Server(1, "qwen7b", "127.0.0.1", 8080, 1000.0)
    assert [serve.uptime(server, now) for now in (1000.5, 1042, 1000 + 3725, 1000 + 2 * 86400 + 7200)] == [
        "0 s",
        "42 s",
        "1 h 2 min",
        "2 d 2 h",
    ]


def test_status_lines_and_the_log_end(tmp_path):
    server = serve.Server(42, "qwen7b", "0.0.0.0", 8080, 1000.0)
    assert serve.describe(server, True, now=1042).splitlines() == [
        "model   qwen7b",
        "url     http://127.0.0.1:8080/v1",
        "pid     42",
        "uptime  42 s",
        "health  ok",
    ]
    assert serve.describe(server, False, now=1042).endswith("health  not answering: invoke serve.logs")
    with pytest.raises(MlxTasksError, match="There is no server log yet") as caught:
        serve.log_text(tmp_path, 50)
    assert caught.value.fix == "start a server: invoke serve default"
    serve.log_path(tmp_path).write_text("".join(f"line {n}\n" for n in range(5)))
    assert serve.log_text(tmp_path, 2) == "line 3\nline 4"
    assert serve.log_text(tmp_path, 0).splitlines() == [f"line {n}" for n in range(5)]


def test_only_a_server_beyond_loopback_gets_the_warning():
    assert serve.open_warning("127.0.0.1") is None and serve.open_warning("localhost") is None
    assert serve.open_warning("0.0.0.0").startswith("Warning: listening on 0.0.0.0, so other machines can reach")


def test_a_start_gets_loopback_by_default_and_a_service_needs_the_venvs_mlxtasks(settings):
    alias, host, argv, capped = serve.prepare(settings, "qwen32b", None, LINUX, force=False)
    assert (alias, host, capped) == ("qwen32b", "127.0.0.1", "")
    assert ServeSpec.from_json(argv[3]).model == str(settings.models / "qwen25-coder-32b")
    assert ServeSpec.from_json(argv[3]).model_map == {"claude-*": "qwen7b"}
    with pytest.raises(MlxTasksError, match="mlxtasks is not installed in") as caught:
        serve.attached_argv(settings, "qwen32b", host, force=False)
    assert caught.value.fix == "invoke install"


def test_a_context_that_does_not_fit_is_capped_and_the_note_says_so(tmp_path):
    s = config.resolve({}, home=tmp_path, context=1_000_000)
    folder = s.models / "qwen25-coder-32b"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "num_hidden_layers": 64,
                "num_attention_heads": 40,
                "hidden_size": 5120,
                "num_key_value_heads": 8,
                "max_position_embeddings": 2_000_000,
            }
        )
    )
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    *_, argv, capped = serve.prepare(s, "qwen32b", None, LINUX, force=True)
    context = ServeSpec.from_json(argv[-1]).context
    assert 4096 < context < 1_000_000
    assert capped == (
        f"(the context is capped at {context} tokens: 1000000 would not fit in this machine's memory with "
        "the model's weights)"
    )


ARGV = [
    "/home/u/venv mlx/bin/mlxtasks",
    "serve",
    "qwen7b",
    "--foreground",
    "--venv",
    "/home/u/venv mlx",
    "--models",
    "/home/u/100%/$models",
    "--port",
    "8080",
]


def test_a_mac_gets_a_launchd_agent_loaded_with_launchctl_bootstrap(tmp_path):
    where = service.target("darwin", tmp_path, tmp_path / ".config", 501)
    assert where.path == tmp_path / "Library" / "LaunchAgents" / "org.mlxtasks.serve.plist"
    assert where.load == (("launchctl", "bootstrap", "gui/501", str(where.path)),)
    assert where.unload == (("launchctl", "bootout", "gui/501/org.mlxtasks.serve"),)
    plist = plistlib.loads(service.render("launchd", ARGV, tmp_path / "serve.log", {"XDG_STATE_HOME": "/s"}).encode())
    assert plist == {
        "Label": "org.mlxtasks.serve",
        "ProgramArguments": ARGV,
        "RunAtLoad": True,
        "EnvironmentVariables": {"XDG_STATE_HOME": "/s"},
        "KeepAlive": {"SuccessfulExit": False},
        "StandardOutPath": str(tmp_path / "serve.log"),
        "StandardErrorPath": str(tmp_path / "serve.log"),
        "ProcessType": "Interactive",
    }


# launchd.plist(5), as its man page words them (the keys the agent uses, and the KeepAlive conditions).
LAUNCHD_PLIST_MAN = {
    "Label": "This required key uniquely identifies the job to launchd.",
    "ProgramArguments": "This key maps to the second argument of execvp(3) and specifies the argument vector to be "
    "passed to the job when a process is spawned.",
    "EnvironmentVariables": "This optional key is used to specify additional environmental variables to be set before "
    "running the job.",
    "RunAtLoad": "This optional key is used to control whether your job is launched once at the time the job is "
    "loaded. The default is false.",
    "KeepAlive": "The default is false and therefore only demand will start the job. [...] If multiple keys are "
    "provided, launchd ORs them [...] If launchd finds no reason to restart the job, it falls back on "
    "demand based invocation.",
    "StandardOutPath": "This optional key specifies that the given path should be mapped to the job's stdout(4)",
    "StandardErrorPath": "This optional key specifies that the given path should be mapped to the job's stderr(4)",
    "ProcessType": "Interactive jobs run with the same resource limitations as apps, that is to say, none.",
}
KEEP_ALIVE_MAN = {
    "SuccessfulExit": "If true, the job will be restarted as long as the program exits and with an exit status of "
    "zero. If false, the job will be restarted in the inverse condition.",
    "Crashed": "If true, the the job will be restarted as long as it exited due to a signal which is typically "
    "associated with a crash (SIGILL, SIGSEGV, etc.). If false, the job will be restarted in the "
    "inverse condition.",
}
CRASH_SIGNALS = {"SIGILL", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGABRT", "SIGTRAP"}


def launchd_restarts(keep_alive, status=None, signal=None) -> bool:
    """Whether launchd starts the job again after it ended with exit `status` or by `signal`, by the man page's
    words above: each condition as written, ORed; true alone keeps it alive unconditionally."""
    if keep_alive is True or keep_alive is False:
        return keep_alive
    conditions = {"SuccessfulExit": signal is None and status == 0, "Crashed": signal in CRASH_SIGNALS}
    assert set(keep_alive) <= set(KEEP_ALIVE_MAN), f"not a KeepAlive condition the man page gives: {set(keep_alive)}"
    return any(conditions[key] == wanted for key, wanted in keep_alive.items())


@pytest.mark.parametrize(
    "ended, restarted",
    [
        ({"status": 139}, True),  # the supervisor after a native crash killed the server (128 + SIGSEGV)
        ({"status": 70}, True),  # the supervisor after an engine fault
        ({"status": 1}, True),  # `mlxtasks serve --foreground` refused to start (the next try may find the port free)
        ({"signal": "SIGKILL"}, True),  # the supervisor itself killed (the OOM killer)
        ({"status": 0}, False),  # a stop: serve.stop's SIGTERM, which the supervisor turns into exit 0
    ],
)
def test_launchd_restarts_the_agent_after_a_crash_or_a_fault_and_not_after_a_stop(tmp_path, ended, restarted):
    plist = plistlib.loads(service.render("launchd", ARGV, tmp_path / "serve.log", {}).encode())
    assert set(plist) <= set(LAUNCHD_PLIST_MAN)
    assert launchd_restarts(plist["KeepAlive"], **ended) is restarted
    assert launchd_restarts({"Crashed": True}, status=139) is False  # the old plist: a supervisor's 139 is an exit


def test_the_service_file_is_0644_whatever_the_umask(tmp_path):
    before = os.umask(0o077)
    try:
        service.write_service_file(tmp_path / "LaunchAgents" / "org.mlxtasks.serve.plist", "text")
        os.umask(0o002)
        service.write_service_file(tmp_path / "LaunchAgents" / "org.mlxtasks.serve.plist", "again")
    finally:
        os.umask(before)
    path = tmp_path / "LaunchAgents" / "org.mlxtasks.serve.plist"
    assert (path.stat().st_mode & 0o777, path.read_text()) == (0o644, "again")
    assert os.listdir(path.parent) == [path.name]


def test_folders_a_background_agent_cannot_read_are_named(tmp_path):
    home = Path("/Users/me")
    folders = [
        home / "Documents" / "models",
        home / "mlx-models",
        home / "Library" / "Mobile Documents" / "x",
        Path("/Volumes/T7/models"),
        home / "venv-mlx",
        home / "Desktop",
        home / "Documents-old",
    ]
    blocked = service.blocked_folders(home, folders)
    assert blocked == [folders[0], folders[2], folders[3], folders[5]]
    assert service.blocked_text(blocked[:1]).startswith(
        "Warning: /Users/me/Documents/models is in a folder macOS keeps"
    )


def test_linux_gets_a_systemd_user_unit_with_every_word_escaped(tmp_path):
    where = service.target("linux", tmp_path, tmp_path / "cfg", 1000)
    assert where.path == tmp_path / "cfg" / "systemd" / "user" / "mlxtasks-serve.service"
    assert where.load[1:] == (
        ("systemctl", "--user", "enable", "mlxtasks-serve.service"),
        ("systemctl", "--user", "restart", "mlxtasks-serve.service"),
    )
    text = service.render("systemd", ARGV, tmp_path / "state" / "serve.log", {"XDG_STATE_HOME": '/a "b" 100%'})
    assert 'Environment="XDG_STATE_HOME=/a \\"b\\" 100%%"\n' in text
    assert (
        'ExecStart="/home/u/venv mlx/bin/mlxtasks" serve qwen7b --foreground --venv "/home/u/venv mlx" '
        "--models /home/u/100%%/$$models --port 8080\n"
    ) in text
    assert f"StandardOutput=append:{tmp_path}/state/serve.log\n" in text
    assert "Restart=on-failure" in text and "StartLimitBurst=3" in text and "WantedBy=default.target" in text


@pytest.mark.tools("systemd-analyze")
def test_systemd_itself_accepts_the_unit(tmp_path):
    unit = tmp_path / "mlxtasks-serve.service"
    unit.write_text(
        service.render(
            "systemd",
            [sys.executable, "-c", "print('it works: 100% $HOME')"],
            tmp_path / "a log",
            {"XDG_STATE_HOME": str(tmp_path / "100% state")},
        )
    )
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_other_systems_and_control_characters_are_refused(tmp_path):
    with pytest.raises(MlxTasksError, match="not windows"):
        service.target("windows", tmp_path, tmp_path, 0)
    with pytest.raises(MlxTasksError, match="control character"):
        service.render("systemd", ["/bin/a\nb"], tmp_path / "log", {})
    with pytest.raises(MlxTasksError, match="control character"):
        service.render("launchd", ["/bin/a"], tmp_path / "log", {"XDG_STATE_HOME": "/a\nb"})


# What the venv's `mlxtasks serve MODEL --foreground ... --port N` is to a service manager: a process that
# records itself in the state folder as the server, and answers /health on its port until it is stopped.
STAND_IN = """#!{python}
import http.server, os, sys
from pathlib import Path
import psutil
from mlxtasks import serve
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
state = Path(os.environ["XDG_STATE_HOME"]) / "mlxtasks"
serve._record(state, serve.Server(os.getpid(), args[1], "127.0.0.1", port, psutil.Process().create_time()))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""

# Starts a service file's program as launchd (plist) or systemd (unit) would, detached; its pid goes to ./pid.
START_JOB = r"""
import os, plistlib, shlex, subprocess, sys
path = sys.argv[1]
if path.endswith(".plist"):
    job = plistlib.load(open(path, "rb"))
    argv, env, log = job["ProgramArguments"], job["EnvironmentVariables"], job["StandardOutPath"]
else:
    lines = open(path).read().splitlines()
    value = lambda key: next(line[len(key):] for line in lines if line.startswith(key))
    unquote = lambda text: text.replace("%%", "%").replace("$$", "$")
    argv = [unquote(word) for word in shlex.split(value("ExecStart="))]
    env = dict(unquote(word).split("=", 1) for line in lines if line.startswith("Environment=")
               for word in shlex.split(line[len("Environment="):]))
    log = unquote(value("StandardOutput=append:"))
with open(log, "ab") as out:
    job = subprocess.Popen(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                           start_new_session=True)
open("pid", "w").write(str(job.pid))
"""


@pytest.fixture
def service_home(tmp_path, monkeypatch):
    """A HOME with a venv holding python and mlxtasks (the stand-in server), and qwen7b installed."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    s = config.resolve({}, home=home)
    (s.venv / "bin").mkdir(parents=True)
    (s.venv / "bin" / "python").touch()
    (s.venv / "bin" / "mlxtasks").write_text(STAND_IN.format(python=sys.executable))
    (s.venv / "bin" / "mlxtasks").chmod(0o755)
    (s.venv / "pyvenv.cfg").touch()
    (s.models / "qwen25-coder-7b").mkdir(parents=True)
    (s.models / "qwen25-coder-7b" / "config.json").write_text("{}")
    (tmp_path / "start_job.py").write_text(START_JOB)
    monkeypatch.setenv("START_JOB", f"{sys.executable} {tmp_path / 'start_job.py'}")
    monkeypatch.setenv("INVOKE_MLX_SERVE_START_TIMEOUT_S", "30")  # the stand-in answers in well under a second
    yield s
    for pid_file in tmp_path.glob("*/pid"):  # a stand-in a test left running
        with contextlib.suppress(psutil.Error, ValueError):
            psutil.Process(int(pid_file.read_text())).kill()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mock_context(result):
    c = MockContext(run=result, repeat=True)
    c.config.load_collection(ns.configuration())
    return c


# systemctl --user for these commands: restart starts the unit's ExecStart, disable --now stops it.
SYSTEMCTL = r"""#!/bin/sh
cd "$SYSTEMCTL_STATE" || exit 99
echo "$*" >> calls.log
case "$2 $3" in
  "daemon-reload "|"enable mlxtasks-serve.service") exit 0 ;;
  "restart mlxtasks-serve.service") [ -e no-start ] || $START_JOB "$UNIT_FILE"; exit 0 ;;
  "disable --now") [ -e pid ] && kill "$(cat pid)" && rm pid; exit 0 ;;
esac
exit 64
"""


def service_manager(command, script, where, tmp_path, monkeypatch):
    """`command` on PATH as `script`, keeping its state in a folder of its own ($COMMAND_STATE), which it returns;
    and `where` as this machine's service target."""
    state = tmp_path / command
    (state / "bin").mkdir(parents=True)
    (state / "bin" / command).write_text(script)
    (state / "bin" / command).chmod(0o755)
    monkeypatch.setenv("PATH", f"{state / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv(f"{command.upper()}_STATE", str(state))
    monkeypatch.setattr(service, "local_target", lambda _home: where)
    return state


@pytest.fixture
def systemd(service_home, tmp_path, monkeypatch):
    """A Linux user's systemd, stood in by a systemctl script on PATH; returns its state folder."""
    home = service_home.venv.parent
    where = service.target("linux", home, home / ".config", 1000)
    monkeypatch.setenv("UNIT_FILE", str(where.path))
    return service_manager("systemctl", SYSTEMCTL, where, tmp_path, monkeypatch)


@pytest.mark.slow
def test_install_service_writes_the_unit_loads_it_and_sees_the_server_answer_then_uninstall_removes_it(
    service_home, systemd, capsys
):
    s, home, port = service_home, service_home.venv.parent, free_port()
    serve_tasks.install_service(real_context(), "qwen7b", port=str(port), force=True)
    unit = home / ".config" / "systemd" / "user" / "mlxtasks-serve.service"
    assert (
        f"ExecStart={s.venv}/bin/mlxtasks serve qwen7b --foreground --venv {s.venv} --models {s.models} "
        f"--port {port} --force\n" in unit.read_text()
    )
    assert (systemd / "calls.log").read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable mlxtasks-serve.service",
        "--user restart mlxtasks-serve.service",
    ]
    assert f'Environment="XDG_STATE_HOME={home}/.local/state"\n' in unit.read_text()  # serve.status finds its server
    assert f"serving at http://127.0.0.1:{port}/v1" in capsys.readouterr().out
    assert serve.healthy(serve.running(s.state))
    serve_tasks.uninstall_service(real_context())
    assert not unit.exists()
    assert (systemd / "calls.log").read_text().splitlines()[-1] == "--user disable --now mlxtasks-serve.service"


@pytest.mark.slow
def test_a_first_service_whose_server_never_answers_is_taken_out_again(service_home, systemd, capsys, monkeypatch):
    (systemd / "no-start").touch()
    monkeypatch.setenv("INVOKE_MLX_SERVE_START_TIMEOUT_S", "1")
    with pytest.raises(Exit):
        serve_tasks.install_service(real_context(), "qwen7b", port=str(free_port()), force=True)
    err = capsys.readouterr().err
    assert "The service was loaded, but its server did not answer within 1 s." in err
    assert "Fix: read its log (invoke serve.logs)" in err
    assert not (service_home.venv.parent / ".config" / "systemd" / "user" / "mlxtasks-serve.service").exists()
    assert (systemd / "calls.log").read_text().splitlines()[-1] == "--user disable --now mlxtasks-serve.service"


# launchctl as a Mac's behaves for these commands: bootstrap starts the agent's program (RunAtLoad), bootout
# stops it but only starts the unloading, the label stays listed for a few `print`s, and bootstrap fails with 5
# while it is (or, here, when the plist says "refused"). Every call goes to calls.log.
LAUNCHCTL = r"""#!/bin/sh
cd "$LAUNCHCTL_STATE" || exit 99
echo "$*" >> calls.log
case "$1 $2" in
  "print gui/501") [ -e no-gui ] && { echo "Could not find domain for port identifier: gui/501" >&2; exit 113; }; exit 0 ;;
  "print gui/501/org.mlxtasks.serve")
    [ -e loaded ] || exit 113
    left=$(cat stopping 2>/dev/null || echo 0)
    [ "$left" -gt 0 ] && { echo $((left - 1)) > stopping; [ "$left" -eq 1 ] && rm loaded; }
    exit 0 ;;
  "bootout gui/501/org.mlxtasks.serve")
    [ -e loaded ] || exit 3; echo 3 > stopping; [ -e pid ] && kill "$(cat pid)" && rm pid; exit 0 ;;
  "bootstrap gui/501")
    if [ -e loaded ] || grep -q refused "$3"; then echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; fi
    cp "$3" loaded; $START_JOB "$3"; exit 0 ;;
esac
exit 64
"""


@pytest.fixture
def launchd(service_home, tmp_path, monkeypatch):
    """A Mac's launchd, stood in by a launchctl script on PATH; returns its state folder."""
    home = service_home.venv.parent
    return service_manager(
        "launchctl", LAUNCHCTL, service.target("darwin", home, home / ".config", 501), tmp_path, monkeypatch
    )


def real_context():
    return Context(Config(overrides=ns.configuration()))


@pytest.mark.slow
def test_reinstalling_the_agent_waits_until_launchd_has_let_the_old_one_go(service_home, launchd):
    plist = service_home.venv.parent / "Library" / "LaunchAgents" / "org.mlxtasks.serve.plist"
    serve_tasks.install_service(real_context(), "qwen7b", port=str(free_port()), force=True)
    port = free_port()
    serve_tasks.install_service(real_context(), "qwen7b", port=str(port), force=True)
    loaded = plistlib.loads((launchd / "loaded").read_bytes())
    assert loaded == plistlib.loads(plist.read_bytes()) and str(port) in loaded["ProgramArguments"]
    assert serve.running(service_home.state).port == port and plist.stat().st_mode & 0o777 == 0o644
    assert loaded["EnvironmentVariables"] == {"XDG_STATE_HOME": str(service_home.state.parent)}
    calls = (launchd / "calls.log").read_text().splitlines()
    assert calls[calls.index("bootout gui/501/org.mlxtasks.serve") :] == [
        "bootout gui/501/org.mlxtasks.serve",
        *["print gui/501/org.mlxtasks.serve"] * 4,
        f"bootstrap gui/501 {plist}",
    ]


@pytest.mark.slow
def test_an_agent_launchd_refuses_gives_the_old_one_back(service_home, launchd, capsys):
    plist = service_home.venv.parent / "Library" / "LaunchAgents" / "org.mlxtasks.serve.plist"
    serve_tasks.install_service(real_context(), "qwen7b", port=str(free_port()), force=True)
    before = plist.read_bytes()
    with pytest.raises(Exit):
        serve_tasks.install_service(real_context(), "qwen7b", host="refused", force=True)
    err = capsys.readouterr().err
    assert (
        f"`launchctl bootstrap gui/501 {plist}` failed: Bootstrap failed: 5: Input/output error. That is launchd "
        "refusing the agent: on macOS 13 and later most often because its switch is off in System Settings > General > "
        "Login Items & Extensions > Allow in the Background (listed as python3 or mlxtasks)." in err
    )
    assert "The service as it was before is back in place." in err
    assert "Fix: turn that switch on, then run invoke serve.install-service again" in err
    assert plist.read_bytes() == before == (launchd / "loaded").read_bytes()


def test_a_first_agent_launchd_refuses_leaves_no_file(service_home, launchd, capsys):
    with pytest.raises(Exit):
        serve_tasks.install_service(real_context(), "qwen7b", host="refused", force=True)
    assert "Bootstrap failed: 5" in capsys.readouterr().err
    assert not (service_home.venv.parent / "Library" / "LaunchAgents" / "org.mlxtasks.serve.plist").exists()


def test_without_a_gui_login_launchd_has_no_domain_and_says_so(service_home, launchd, capsys):
    (launchd / "no-gui").touch()
    with pytest.raises(Exit):
        serve_tasks.install_service(real_context(), "qwen7b", force=True)
    err = capsys.readouterr().err
    assert "launchd has no gui/501 domain: nobody is logged in at this Mac's screen as this user" in err
    assert "log in at the Mac (or through Screen Sharing)" in err
    assert not (service_home.venv.parent / "Library").exists()


@pytest.mark.slow
def test_uninstall_stops_the_server_and_removes_the_agent(service_home, launchd):
    plist = service_home.venv.parent / "Library" / "LaunchAgents" / "org.mlxtasks.serve.plist"
    serve_tasks.install_service(real_context(), "qwen7b", port=str(free_port()), force=True)
    server = serve.running(service_home.state)
    uninstall(real_context(), yes=True)
    assert not plist.exists() and not (launchd / "loaded").exists()
    assert "bootout gui/501/org.mlxtasks.serve" in (launchd / "calls.log").read_text()
    assert gone(server.pid) and serve.running(service_home.state) is None


def gone(pid):
    """The process has ended (a zombie no one has reaped yet counts: the stand-in's parent exited at once)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_an_agent_whose_models_are_in_documents_is_warned_it_will_likely_be_refused(service_home, launchd, capsys):
    models = service_home.venv.parent / "Documents" / "models"
    (models / "qwen25-coder-7b").mkdir(parents=True)
    (models / "qwen25-coder-7b" / "config.json").write_text("{}")
    serve_tasks.install_service(real_context(), "qwen7b", force=True, models=str(models), dry_run=True)
    assert f"Warning: {models} is in a folder macOS keeps from background agents" in capsys.readouterr().err


def test_install_service_dry_run_writes_and_runs_nothing(service_home, monkeypatch, capsys):
    home = service_home.venv.parent
    monkeypatch.setattr(service, "local_target", lambda _home: service.target("linux", home, home / ".config", 1000))
    c = mock_context(Result())
    serve_tasks.install_service(c, "qwen7b", force=True, dry_run=True)
    assert not (home / ".config").exists() and c.run.call_count == 0
    assert "systemctl --user enable mlxtasks-serve.service" in capsys.readouterr().out


def test_uninstall_removes_the_prompt_cache_on_disk_with_the_venv_and_says_where(service_home, capsys):
    cache = serve.cache_path(service_home.state)
    cache.mkdir(parents=True)
    (cache / "index.json").write_text("{}")
    uninstall(real_context(), dry_run=True)
    assert f"delete the prompt cache {cache}" in capsys.readouterr().out and cache.exists()
    uninstall(real_context(), yes=True)
    assert f"Emptied the prompt cache on disk ({cache}" in capsys.readouterr().out
    assert not cache.exists() and not service_home.venv.exists()


def test_uninstall_deletes_models_only_with_delete_models_and_has_no_models_flag(service_home, capsys):
    """--models names the models folder on every other task; on uninstall the choice to delete them is
    --delete-models (a dry run here, which touches nothing)."""
    names = {argument.name for argument in uninstall.get_arguments()}
    assert "delete_models" in names and "models" not in names
    uninstall(real_context(), delete_models=True, dry_run=True)
    assert f"delete {service_home.models / 'qwen25-coder-7b'}" in capsys.readouterr().out
    uninstall(real_context(), dry_run=True)
    assert "qwen25-coder-7b" not in capsys.readouterr().out
    assert (service_home.models / "qwen25-coder-7b" / "config.json").is_file()
