"""The one check registry of preflight and validate: ids, phases, --list and --only, and the probe's boundary."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlxtasks import config, registry, validate
from mlxtasks.checks import Status
from mlxtasks.errors import MlxTasksError
from mlxtasks.facts import GB, GIB
from mlxtasks.protocol import ProbeAnswer, ProbeSpec

from .support.helpers import invoke
from .test_preflight import mac
from .test_validate import HEALTHY, make_model


def declared(check_id: str) -> bool:
    patterns = [re.escape(i).replace(re.escape(registry.FOLDER), "[^.]+") for c in registry.CHECKS for i in c.ids]
    return any(re.fullmatch(p, check_id) for p in patterns)


def healthy_answers(*folders: Path) -> ProbeAnswer:
    generated = {"load_seconds": 0.5, "tokens": 8, "tokens_per_second": 30.0}
    return ProbeAnswer(
        {
            "mlx": HEALTHY,
            "accelerator": HEALTHY,
            "mlx-lm": {"version": "0.32.2", "missing_api": []},
            **{str(f): generated for f in folders},
        },
        {"mlx": 1.5, str(folders[0]): 2.0},
    )


def test_every_id_a_check_reports_is_declared_the_generate_ids_too(tmp_path):
    """validate's hand-kept CHECK_IDS had no models.FOLDER.generate; --list now comes from the declarations."""
    settings = config.resolve({}, home=tmp_path)
    folder = make_model(settings.models / "qwen25-coder-7b")
    inputs = registry.Inputs(settings, host=mac(), answers=healthy_answers(folder))
    found = registry.run(inputs, registry.for_validate(deep=True))
    assert "models.qwen25-coder-7b.generate" in [r.id for r in found]
    assert [r.id for r in found if not declared(r.id)] == []
    assert "models: models.<folder>, models.<folder>.generate" in registry.listing(registry.PHASES)


def test_results_come_in_registry_order_timed_where_the_venv_did_the_work(tmp_path):
    settings = config.resolve({}, home=tmp_path)
    folder = make_model(settings.models / "m")
    found = registry.run(
        registry.Inputs(settings, host=mac(), answers=healthy_answers(folder)), registry.for_validate(deep=True)
    )
    groups = ["system", "mlx", "accelerator", "mlx-lm", "packages", "environment", "models"]
    assert registry.groups(registry.for_validate(deep=True)) == groups
    assert list(dict.fromkeys(registry.group_of(r.id) for r in found)) == groups
    by_id = {r.id: r for r in found}
    assert [by_id[i].seconds for i in ("mlx.import", "mlx.device", "mlx.compute")] == [0.5, 0.5, 0.5]
    assert by_id["models.m.generate"].seconds == 2.0 and by_id["models.m.generate"].status is Status.OK


def test_a_question_that_raised_in_the_venv_is_that_check_crashed_and_the_others_still_judged(tmp_path):
    settings = config.resolve({}, home=tmp_path)
    answers = ProbeAnswer(
        {
            "mlx": {"crashed": "AttributeError: module 'mlx.core' has no attribute 'device_info'"},
            "accelerator": HEALTHY,
        },
        {},
    )
    found = {
        r.id: r
        for r in registry.run(
            registry.Inputs(settings, host=mac(), answers=answers),
            registry.for_validate(only="mlx") + registry.for_validate(only="accelerator"),
        )
    }
    assert found["mlx.import"].status is Status.CRASHED
    assert (
        found["mlx.import"].message
        == "the check itself failed: AttributeError: module 'mlx.core' has no attribute 'device_info'"
    )
    assert found["accelerator.device"].status is Status.OK


def test_a_venv_python_that_stops_is_a_crash_with_its_last_line():
    stopped = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('partial'); sys.exit('ImportError: no numpy')"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(Exception, match=r"^the venv's Python stopped: ImportError: no numpy$"):
        validate.probe_answer(stopped)


def test_without_a_venv_each_mlx_group_says_it_was_skipped(tmp_path):
    found = registry.run(
        registry.Inputs(config.resolve({}, home=tmp_path), host=mac()), registry.for_validate(deep=True)
    )
    skipped = [r for r in found if r.message == "skipped: the venv is missing or broken"]
    assert [r.id for r in skipped] == ["mlx.import", "accelerator.device", "mlx-lm.import", "packages.versions"]
    assert {r.fix for r in skipped} == {"invoke setup"}


def test_only_takes_a_group_or_a_check_id_and_names_the_list_otherwise():
    assert [c.ids for c in registry.for_preflight("system.disk")] == [("system.disk",)]
    assert [c.ids[0] for c in registry.for_validate("mlx-lm")] == ["mlx-lm.import"]
    assert [c.ids[0] for c in registry.for_validate("mlx.compute")] == ["mlx.import"]
    with pytest.raises(MlxTasksError) as raised:
        registry.for_preflight("mlx")
    assert raised.value.message == "--only must be one of system or one of preflight's check ids, got 'mlx'."
    assert raised.value.fix == "invoke preflight --list"


def test_only_takes_the_id_of_one_model_folder_as_validate_reports_it(tmp_path):
    settings = config.resolve({}, home=tmp_path)
    folders = [make_model(settings.models / name) for name in ("a", "b.v2")]
    assert registry.named_folder("models.b.v2.generate") == "b.v2" and registry.named_folder("system.disk") is None

    def ids(only: str) -> list[str]:
        inputs = registry.Inputs(
            settings, host=mac(), answers=healthy_answers(*folders), folder=registry.named_folder(only)
        )
        return [r.id for r in registry.run(inputs, registry.for_validate(only))]

    assert ids("models.b.v2") == ["models.b.v2"]
    assert ids("models.a.generate") == ["models.a.generate"]  # naming a --deep check runs it
    assert ids("models") == ["models.a", "models.b.v2"]
    with pytest.raises(MlxTasksError, match=r"^There is no model folder 'nope' in "):
        ids("models.nope")


def test_skip_mlx_leaves_out_every_check_that_imports_mlx():
    kept = registry.for_validate(deep=True, skip_mlx=True)
    assert registry.groups(kept) == ["system", "packages", "environment", "models"]
    assert all(c.phase not in registry.MLX_PHASES for c in kept)
    assert [c.ids for c in kept if c.group == "models"] == [("models.<folder>",)]


@pytest.mark.slow
def test_validate_skip_mlx_through_the_cli_says_so_and_runs_the_rest(tmp_path):
    done = invoke("validate", "--skip-mlx", home=tmp_path)
    assert "(the checks that import MLX were skipped; invoke validate runs them all)" in done.stdout
    everything = done.stdout + done.stderr
    assert "mlx.core imports" not in everything and "Accelerator" not in everything
    assert "Package versions: skipped: the venv is missing or broken" in done.stderr
    assert "Checks passed: 5/9" in done.stdout


@pytest.mark.slow
def test_preflight_list_and_only_come_from_the_registry(tmp_path):
    listed = invoke("preflight", "--list", home=tmp_path)
    assert listed.stdout.splitlines() == ["system: system.os, system.python, system.folders, system.disk, system.ram"]
    one = invoke("preflight", "--only", "system.ram", "--json", home=tmp_path)
    assert one.returncode == 0, one.stderr
    assert '"id": "system.ram"' in one.stdout and '"system.os"' not in one.stdout


def test_the_probe_answers_a_spec_here_without_mlx_and_validate_judges_it():
    """The tool's own Python has no MLX: the probe's answer says so, and the verdict gives the fix."""
    if importlib.util.find_spec("mlx"):
        pytest.skip("this interpreter has MLX; test_validate_e2e asks a real venv's")
    spec = ProbeSpec(["mlx", "mlx-lm"])
    done = subprocess.run(
        [sys.executable, "-m", "mlxtasks.runtime.probe", "--spec", spec.to_json()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    answer = ProbeAnswer.from_json(done.stdout)
    assert set(answer.answers) == set(answer.seconds) == {"mlx", "mlx-lm"}
    [result] = validate.mlx_checks(answer.answers["mlx"])
    assert (
        result.status is Status.ERROR and "No module named 'mlx'" in result.message and result.fix == "invoke install"
    )


def test_a_model_folder_s_check_says_the_largest_context_that_fits_and_warns_when_none_does(tmp_path):
    settings = config.resolve({}, home=tmp_path)
    folder = make_model(settings.models / "qwen25-coder-7b")
    (folder / "config.json").write_text(
        '{"model_type": "qwen2", "num_hidden_layers": 28, "num_attention_heads": 28, '
        '"hidden_size": 3584, "num_key_value_heads": 4, "max_position_embeddings": 32768}'
    )
    check = registry.for_validate("models")
    [fits] = registry.run(registry.Inputs(settings, host=mac()), check)
    assert fits.status is Status.OK and fits.message.endswith(
        "; fits: yes, with up to 32,768 tokens of context (its own limit)"
    )
    [tight] = registry.run(
        registry.Inputs(settings, host=mac(wired_limit_mb=400)), check
    )  # 0.42 GB: the overhead alone is 0.3
    assert tight.status is Status.WARNING and "; fits: no: needs about 0.5 GB even at 4,096 tokens" in tight.message
    assert tight.fix == "a smaller model: invoke models.search QUERY --fits"


def test_validate_keeps_metals_working_set_and_every_later_command_judges_fit_by_it(tmp_path):
    """A 36 GB Mac whose MLX reports a working set of 27 GiB (Metal's figure, not 2/3 of RAM): validate says it
    and keeps it, and the facts a later command reads give the same budget; other RAM's figure is not this Mac's."""
    from dataclasses import replace

    from mlxtasks import catalog, facts

    settings = config.resolve({}, home=tmp_path)
    host = mac(ram_total=36 * GIB)
    assert catalog.memory_budget(host) == int(36 * GIB * 2 / 3)  # nothing read yet: macOS's default share
    [memory] = [
        r
        for r in registry.run(
            registry.Inputs(settings, host=host, answers=healthy_answers(tmp_path)),
            registry.for_validate("accelerator"),
        )
        if r.id == "accelerator.memory"
    ]
    assert memory.message.startswith(f"{27 * GIB / GB:.1f} GB the GPU may use (Metal's recommended working set")
    kept = facts.remembered_working_set(facts.working_set_path(settings.state), 36 * GIB)
    assert kept == 27 * GIB and catalog.memory_budget(replace(host, working_set=kept)) == 27 * GIB
    assert facts.remembered_working_set(facts.working_set_path(settings.state), 64 * GIB) == 0
    assert (
        catalog.memory_budget(replace(host, working_set=kept, wired_limit_mb=30000)) == 30000 * 2**20
    )  # set by hand: it wins
