"""`invoke serve` for real: our server (mlxtasks.runtime.server) from the session's venv with the tiny model, on a free port of
127.0.0.1, driven by the `openai` client and raw HTTP, then stopped."""

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from .support.helpers import BIN, ROOT, clean_env, invoke

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def paths(bootstrapped, tiny_model, tmp_path_factory):
    """--venv and --models for a models folder holding the tiny model as qwen7b."""
    _, shared_home, _ = bootstrapped
    models = tmp_path_factory.mktemp("serve") / "models"
    shutil.copytree(tiny_model, models / "qwen25-coder-7b")
    return ["--venv", str(shared_home / "venv-mlx"), "--models", str(models)]


def state_of(home):
    return home / ".local" / "state" / "mlxtasks"


def server_pid(home):
    return json.loads((state_of(home) / "serve.json").read_text())["pid"]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited; its reaper has not looked yet
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def server(paths, tmp_path_factory):
    """One server for the module: (HOME, base URL, the start's output); stopped, and proven gone, at the end."""
    home = tmp_path_factory.mktemp("serve-home")
    port = free_port()
    started = invoke("serve", "qwen7b", "--port", str(port), *paths, home=home)
    assert started.returncode == 0, started.stdout + started.stderr
    pid = server_pid(home)
    yield home, f"http://127.0.0.1:{port}/v1", started
    stopped = invoke("serve.stop", home=home)
    assert stopped.returncode == 0 and f"Stopped qwen7b (pid {pid})." in stopped.stdout
    assert gone(pid) and not (state_of(home) / "serve.json").exists()


def client(url):
    import openai  # here, not at the top: collecting the fast lane stays quick

    return openai.OpenAI(base_url=url, api_key="anything", max_retries=0, timeout=120)


def post(url, body: bytes, **headers):
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request(
        "POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json", **headers}
    )
    answer = connection.getresponse()
    return answer.status, answer.read()


def test_start_prints_the_url_and_a_client_line(server):
    home, url, started = server
    assert f"Serving qwen7b at {url} (pid {server_pid(home)}); any API key works." in started.stdout
    assert f"Try: curl {url}/chat/completions -H 'Content-Type: application/json'" in started.stdout
    assert started.stderr == ""  # loopback: no warning


def test_a_chat_completion_and_a_streamed_one(server):
    _, url, _ = server
    messages = [{"role": "user", "content": "Write a function that adds two numbers."}]
    reply = client(url).chat.completions.create(model="qwen7b", messages=messages, max_tokens=8, temperature=0)
    assert reply.model == "qwen7b" and reply.usage.completion_tokens == 8 and reply.choices[0].finish_reason == "length"
    chunks = list(
        client(url).chat.completions.create(model="qwen7b", messages=messages, max_tokens=8, temperature=0, stream=True)
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 4
    assert "".join(pieces) == reply.choices[0].message.content  # greedy either way: the same eight tokens


def test_text_completions_and_the_served_name_in_models(server):
    _, url, _ = server
    assert [m.id for m in client(url).models.list()] == ["qwen7b"]
    done = client(url).completions.create(model="qwen7b", prompt="def add(a, b):", max_tokens=4, temperature=0)
    assert done.usage.completion_tokens == 4


def test_eight_concurrent_requests_are_all_answered(server):
    _, url, _ = server

    def ask(n):
        return client(url).chat.completions.create(
            model="qwen7b", max_tokens=6, temperature=0, messages=[{"role": "user", "content": f"Count to {n}."}]
        )

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(ask, range(8)))
    assert [r.usage.completion_tokens for r in replies] == [6] * 8


def test_bad_requests_get_4xx_and_the_server_stays_up(server):
    import openai  # here, not at the top: collecting the fast lane stays quick

    home, url, _ = server
    status, body = post(url, b'{"model": "qwen7b", "messages": [')
    assert status == 400 and json.loads(body)["error"]["message"] == "The body is not valid JSON."
    with pytest.raises(openai.NotFoundError) as unknown:
        client(url).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.response.json() == {
        "error": {
            "message": "The model 'gpt-4o' is not installed here; GET /v1/models lists the ones that are.",
            "type": "not_found_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    with pytest.raises(openai.BadRequestError):
        client(url).chat.completions.create(model="qwen7b", messages=[{"role": "user", "content": "hi"}], max_tokens=-1)
    assert (
        client(url)
        .chat.completions.create(
            model="qwen7b", messages=[{"role": "user", "content": "hi"}], max_tokens=2, temperature=0
        )
        .usage.completion_tokens
        == 2
    )
    assert "health  ok" in invoke("serve.status", home=home).stdout


def test_requests_addressed_to_another_host_name_are_refused(server):
    _, url, _ = server
    body = json.dumps({"model": "qwen7b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode()
    assert post(url, body, Host="attacker.example:80")[0] == 403  # a DNS-rebinding page
    assert post(url, body, Host="localhost")[0] == 200


def test_status_and_logs(server):
    home, url, _ = server
    status = invoke("serve.status", home=home)
    assert status.returncode == 0, status.stderr
    lines = dict(line.split(None, 1) for line in status.stdout.splitlines())
    assert lines["model"] == "qwen7b" and lines["url"] == url and lines["pid"] == str(server_pid(home))
    assert lines["health"] == "ok" and lines["uptime"][0].isdigit()
    assert (state_of(home) / "serve.log").stat().st_mode & 0o777 == 0o600
    logs = invoke("serve.logs", "--lines", "0", home=home)
    assert "Uvicorn running on http://127.0.0.1:" in logs.stdout
    assert re.search(r"POST /v1/chat/completions 200 in=\d+B out=\d+B \d+\.\d+s", logs.stdout)


def test_a_second_serve_while_one_runs_says_so(server, paths):
    home, url, _ = server
    again = invoke("serve", "qwen7b", "--port", str(free_port()), *paths, home=home)
    assert again.returncode == 1
    assert f"A server is already running: qwen7b at {url} (pid {server_pid(home)})." in again.stderr
    assert "Fix: stop it first: invoke serve.stop" in again.stderr


def test_a_port_in_use_is_one_sentence(paths, home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = invoke("serve", "default", "--port", str(port), *paths, home=home)
    assert done.returncode == 1 and f"Port {port} on 127.0.0.1 is already in use by another program" in done.stderr
    assert f"Fix: invoke serve qwen7b --port {port + 1}" in done.stderr
    assert not (state_of(home) / "serve.json").exists()


def test_a_model_not_downloaded_or_too_big_is_refused(paths, home, tmp_path):
    missing = invoke("serve", "phi4", *paths, home=home)
    assert missing.returncode == 1 and "phi4 is not downloaded." in missing.stderr
    assert "Fix: invoke models.pull phi4" in missing.stderr
    huge = tmp_path / "huge.yaml"
    huge.write_text("mlx:\n  catalog:\n    qwen7b:\n      size_gb: 100000\n")
    big = invoke("-f", str(huge), "serve", "qwen7b", *paths, home=home)
    needs = re.search(r"qwen7b needs about ([\d.]+) GB of memory", big.stderr)
    assert big.returncode == 1 and needs and float(needs[1]) > 100000
    assert "invoke serve qwen7b --force" in big.stderr
    assert not state_of(home).exists()


def test_a_model_that_cannot_load_fails_with_the_logs_last_lines_and_leaves_nothing_running(paths, home, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(paths[3], models)
    (models / "qwen25-coder-7b" / "model-00002-of-00002.safetensors").write_bytes(b"not weights")
    done = invoke("serve", "qwen7b", "--port", str(free_port()), *paths[:2], "--models", str(models), home=home)
    assert done.returncode == 1
    assert "The server exited while starting (status 1). The log's last lines:" in done.stderr
    assert "Traceback" not in done.stderr and "(the traceback is in " in done.stderr  # the trace stays in the log
    assert "Error" in done.stderr and "Fix: read its whole log: invoke serve.logs" in done.stderr
    assert not (state_of(home) / "serve.json").exists()


def test_a_server_that_does_not_answer_in_time_is_stopped(paths, home):
    done = invoke(
        "serve", "qwen7b", "--port", str(free_port()), *paths, home=home, INVOKE_MLX_SERVE_START_TIMEOUT_S="0"
    )
    assert done.returncode == 1 and "The server did not answer within 0 s, so it was stopped." in done.stderr
    assert not (state_of(home) / "serve.json").exists()
    assert not any(
        "mlxtasks.runtime.server" in " ".join(p.info["cmdline"] or [])
        and p.info["environ"]
        and p.info["environ"].get("HOME") == str(home)
        for p in psutil.process_iter(["cmdline", "environ"])
    )


def test_another_host_warns_that_there_is_no_authentication(paths, home):
    port = free_port()
    done = invoke("serve", "qwen7b", "--host", "0.0.0.0", "--port", str(port), *paths, home=home)
    try:
        assert done.returncode == 0, done.stderr
        assert (
            "Warning: listening on 0.0.0.0, so other machines can reach this server, and it has no "
            "authentication" in done.stderr
        )
        assert f"Serving qwen7b at http://127.0.0.1:{port}/v1" in done.stdout
        assert [m.id for m in client(f"http://127.0.0.1:{port}/v1").models.list()] == ["qwen7b"]
    finally:
        assert invoke("serve.stop", home=home).returncode == 0


def test_foreground_is_the_server_itself_and_ctrl_c_stops_it(paths, home):
    port = free_port()
    attached = subprocess.Popen(
        [str(BIN / "invoke"), "serve", "qwen7b", "--foreground", "--port", str(port), *paths],
        cwd=ROOT,
        env=clean_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in attached.stdout:
            if "Uvicorn running on" in line:
                break
        assert server_pid(home) == attached.pid  # exec kept the pid, so the record names the server
        status = invoke("serve.status", home=home)
        assert "health  ok" in status.stdout and f"pid     {attached.pid}" in status.stdout
        attached.send_signal(signal.SIGINT)
        attached.wait(timeout=60)
    finally:
        attached.kill()
    assert invoke("serve.status", home=home).stdout == "No server is running. Start one: invoke serve default\n"
    assert not (state_of(home) / "serve.json").exists()


def test_stop_and_status_without_a_server(home):
    assert invoke("serve.stop", home=home).stdout == "No server is running.\n"
    status = invoke("serve.status", home=home)
    assert status.returncode == 1 and "No server is running." in status.stdout
    logs = invoke("serve.logs", home=home)
    assert logs.returncode == 1 and "There is no server log yet" in logs.stderr


def test_serve_none_loads_a_model_when_named_and_ps_and_unload_show_it(paths, home):
    port = free_port()
    done = invoke("serve", "none", "--port", str(port), *paths, home=home, INVOKE_MLX_DEFAULT_MODEL="llama3.1-8b")
    url = f"http://127.0.0.1:{port}/v1"
    try:
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"Starting the server (no model loaded at start) on 127.0.0.1 port {port} ")
        assert f"Serving the installed models on demand at {url}" in done.stdout
        assert '"model": "qwen7b"' in done.stdout  # the example names an installed model, the default being none
        assert "model   none loaded at start (see invoke serve.ps)" in invoke("serve.status", home=home).stdout
        nothing = invoke("serve.ps", home=home)
        assert nothing.stdout == "No model is loaded; a request that names an installed model loads it.\n"
        assert (
            client(url)
            .chat.completions.create(model="qwen7b", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
            .usage.completion_tokens
            == 2
        )
        table = invoke("serve.ps", home=home).stdout.splitlines()
        assert table[0].split() == ["MODEL", "MEMORY", "IDLE", "UNLOADS"] and table[1].split()[0] == "qwen7b"
        assert re.search(r" GB .* in (\d+ min )?\d+ s$| in 5 min$", table[1]) and "GB in use of a budget of" in table[2]
        assert invoke("serve.unload", "qwen7b", home=home).stdout == "Unloaded qwen7b.\n"
        again = invoke("serve.unload", "qwen7b", home=home)
        assert again.returncode == 1 and "qwen7b is not loaded." in again.stderr
    finally:
        stopped = invoke("serve.stop", home=home)
    assert stopped.returncode == 0 and stopped.stdout.startswith("Stopped the server (no model loaded at start) (pid ")
