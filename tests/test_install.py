import pytest
from packaging.version import Version

from mlxtasks import config, install
from mlxtasks.installer import Installer

DEFAULT_PACKAGES = config.resolve({}, home="/h").packages


@pytest.mark.parametrize(
    "backend, spec, wheel",
    [("metal", "mlx", "mlx-metal"), ("cpu", "mlx[cpu]", "mlx-cpu"), ("cuda12", "mlx[cuda12]", "mlx-cuda-12"),
     ("cuda13", "mlx[cuda13]", "mlx-cuda-13")],
)
def test_package_set_per_backend(backend, spec, wheel):
    items = install.wanted(backend, DEFAULT_PACKAGES)
    specs = [str(i.requirement) for i in items if i.requirement]
    assert specs[0] == spec
    assert specs[1:] == ["mlx-lm", "numpy", "transformers", "huggingface-hub", "sentencepiece", "tiktoken"]
    assert wheel in [i.name for i in items if i.requirement is None]


def test_every_default_package_and_backend_wheel_is_pinned():
    pinned = install.pins()
    for backend in install.MLX_REQUIREMENT:
        for item in install.wanted(backend, DEFAULT_PACKAGES):
            assert item.name in pinned, item.name
    assert pinned["mlx"] == pinned["mlx-cpu"] == pinned["mlx-metal"] == pinned["mlx-cuda-13"]


def test_satisfied_means_present_and_not_older_than_the_pin():
    items = install.wanted("cpu", ("numpy",))
    pins = {"mlx": Version("0.32.4"), "mlx-cpu": Version("0.32.4"), "numpy": Version("2.4.6")}
    installed = {"mlx": "0.32.4", "mlx-cpu": "0.32.4", "numpy": "2.4.6"}
    assert install.unsatisfied(items, installed, pins) == []
    assert install.unsatisfied(items, {**installed, "numpy": "2.5.0"}, pins) == []  # an --upgrade sticks
    assert install.unsatisfied(items, {**installed, "numpy": "1.26.4"}, pins) == ["numpy"]
    assert install.unsatisfied(items, {**installed, "mlx-cpu": None}, pins) == ["mlx-cpu"]


def test_a_configured_range_is_respected():
    items = install.wanted("cpu", ("numpy<2",))
    assert install.unsatisfied(items, {"mlx": "0.32.4", "mlx-cpu": "0.32.4", "numpy": "2.4.6"}, {}) == ["numpy"]


def test_a_bad_package_entry_is_a_clear_error():
    from mlxtasks.errors import MlxTasksError

    with pytest.raises(MlxTasksError, match="mlx.packages"):
        install.wanted("cpu", ("not a requirement!",))


def test_install_commands_pin_unless_upgrading(tmp_path):
    python = tmp_path / "bin" / "python"
    uv = install._install_argv(python, Installer("uv", "/x/uv"), ["mlx[cpu]"], upgrade=False)
    assert uv[:5] == ("/x/uv", "pip", "install", "--python", str(python))
    assert ("--constraint", str(install.CONSTRAINTS)) == uv[5:7]
    pip = install._install_argv(python, Installer("pip"), ["mlx[cpu]"], upgrade=True)
    assert pip[:4] == (str(python), "-m", "pip", "install") and "--upgrade" in pip and "--constraint" not in pip


def test_plan_for_a_missing_venv_installs_everything_including_mlxtasks(tmp_path):
    s = config.resolve({}, home=tmp_path)
    step = install.plan(s, "cpu", Installer("pip"))
    assert not step.done
    argv = step.actions[0].argv
    assert argv[-1] == str(install.SOURCE_TREE)  # mlxtasks itself, from this checkout
    assert step.actions[0].tries == 3
