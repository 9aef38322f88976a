"""The validator's judgements, with answers given as data (a Mac's Metal, a CUDA GPU, broken installs)."""

import json
import struct
from pathlib import Path

from mlxtasks import config, rcfile, shellblock, store, validate
from mlxtasks.checks import Result, Status, run_checks
from mlxtasks.facts import GB, GIB

HEALTHY = {
    "version": "0.32.4",
    "default_device": "Device(gpu, 0)",
    "metal_available": True,
    "cuda_available": False,
    "device_info": {
        "architecture": "applegpu_g15s",
        "device_name": "Apple M3 Pro",
        "memory_size": 36 * GIB,
        "max_recommended_working_set_size": 27 * GIB,
    },
    "compute": {"sum_of_squares": 285, "matmul": [[19.0, 22.0], [43.0, 50.0]]},
    "matmul_error": 2e-6,
}


def by_id(results):
    return {r.id: r for r in results}


def test_a_mac_with_metal_passes_and_reports_what_fits_the_gpu():
    found = by_id(
        validate.accelerator_checks("darwin", "metal", HEALTHY, (47 * GB, "macOS's default GPU share of RAM"))
    )
    assert found["accelerator.device"].status is Status.OK and "Apple M3 Pro" in found["accelerator.device"].message
    memory = found["accelerator.memory"]
    assert memory.status is Status.OK and "too big" not in memory.message
    assert memory.message.startswith("47.0 GB the GPU may use (macOS's default GPU share of RAM)")
    assert memory.details == (f"MLX reports a working-set limit of {27 * GIB / GB:.1f} GB",)


def test_a_16gb_mac_gpu_cannot_hold_qwen32b():
    memory = by_id(validate.accelerator_checks("darwin", "metal", HEALTHY, (int(10.7 * GIB), "x")))[
        "accelerator.memory"
    ]
    assert "too big: qwen32b" in memory.message


def test_a_mac_whose_mlx_cannot_see_metal_is_an_error():
    answers = {**HEALTHY, "metal_available": False, "default_device": "Device(cpu, 0)"}
    device = by_id(validate.accelerator_checks("darwin", "metal", answers))["accelerator.device"]
    assert device.status is Status.ERROR and device.fix


def test_the_cpu_backend_is_a_warning_on_a_mac_and_fine_on_linux():
    cpu = {**HEALTHY, "metal_available": False, "default_device": "Device(cpu, 0)", "device_info": {"device_name": "x"}}
    assert by_id(validate.accelerator_checks("darwin", "cpu", cpu))["accelerator.device"].status is Status.WARNING
    linux = by_id(validate.accelerator_checks("linux", "cpu", cpu))
    assert linux["accelerator.device"].status is Status.OK and "CPU backend" in linux["accelerator.device"].message
    assert "system memory" in linux["accelerator.memory"].message


def test_cuda_reports_the_gpu_and_fails_when_it_is_not_seen():
    # mx.device_info() on the lent H100 (mlx 0.32.4, mlx-cuda-13), its strings and numbers as the probe keeps them.
    h100 = {
        "total_memory": 85520809984,
        "free_memory": 84465090560,
        "compute_capability_minor": 0,
        "compute_capability_major": 9,
        "pci_bus_id": "0000:00:06.0",
        "uuid": "GPU-de35c58e-f3ce-fb65-eef8-47bfb2f2a6b6",
        "architecture": "sm_90",
        "device_name": "NVIDIA H100 80GB HBM3",
    }
    gpu = {
        **HEALTHY,
        "metal_available": False,
        "cuda_available": True,
        "default_device": "Device(gpu, 0)",
        "device_info": h100,
    }
    device = by_id(validate.accelerator_checks("linux", "cuda13", gpu))["accelerator.device"]
    assert device.status is Status.OK
    assert device.message == "CUDA GPU (NVIDIA H100 80GB HBM3, 86 GB, compute capability 9.0) is the default device"
    memory = by_id(validate.accelerator_checks("linux", "cuda13", gpu))["accelerator.memory"]
    assert memory.message.startswith("85.5 GB the GPU has; fits: qwen7b, qwen32b")
    lost = by_id(validate.accelerator_checks("linux", "cuda12", {**gpu, "cuda_available": False}))["accelerator.device"]
    assert lost.status is Status.ERROR and "nvidia-smi" in lost.fix


def test_a_wrong_matmul_or_wrong_answers_fail():
    assert (
        by_id(validate.accelerator_checks("linux", "cpu", {**HEALTHY, "matmul_error": 0.2}))[
            "accelerator.matmul"
        ].status
        is Status.ERROR
    )
    wrong = {**HEALTHY, "compute": {"sum_of_squares": 284, "matmul": [[19.0, 22.0], [43.0, 50.0]]}}
    assert by_id(validate.mlx_checks(wrong))["mlx.compute"].status is Status.ERROR


def test_an_mlx_that_does_not_import_is_one_error_with_the_fix():
    [result] = validate.mlx_checks({"import_error": "ImportError: libmlx.so: cannot open"})
    assert result.id == "mlx.import" and result.status is Status.ERROR and result.fix == "invoke install"


def test_missing_mlx_lm_api_is_named():
    result = by_id(
        validate.mlx_lm_checks({"version": "0.19.0", "missing_api": ["mlx_lm.models.cache.make_prompt_cache"]})
    )
    assert result["mlx-lm.api"].status is Status.ERROR and "make_prompt_cache" in result["mlx-lm.api"].message


def test_packages_outside_the_pins_and_broken_requirements_fail():
    results = by_id(
        validate.package_checks(
            ["numpy"],
            {"numpy": "1.26.0", "mlx": "0.32.4"},
            ["mlx", "numpy"],
            (False, "mlx-lm 0.32.2 requires transformers, which is not installed.\n"),
        )
    )
    assert (
        results["packages.versions"].status is Status.ERROR and "numpy 1.26.0" in results["packages.versions"].message
    )
    assert results["packages.requirements"].message == "mlx-lm 0.32.2 requires transformers, which is not installed."


def test_a_venv_running_other_mlxtasks_code_is_an_error_with_install_as_the_fix():
    results = by_id(
        validate.package_checks(
            [], {"mlx": "0.32.4"}, ["mlx"], (True, ""), stale="runs the checkout /old, which is gone, not /new"
        )
    )
    versions = results["packages.versions"]
    assert versions.status is Status.ERROR and versions.fix == "invoke install"
    assert "mlxtasks (runs the checkout /old, which is gone, not /new)" in versions.message


def test_a_stale_shell_block_is_an_error_and_a_missing_one_a_warning(tmp_path):
    rc = tmp_path / ".zshrc"
    assert validate.shell_check([(rc, "old", "new")]).status is Status.ERROR
    assert validate.shell_check([(rc, "", "new")]).status is Status.WARNING
    assert validate.shell_check([(rc, "new", "new")]).status is Status.OK


def test_a_check_that_raises_is_crashed_with_one_line_and_counts_as_an_error():
    def broken():
        raise KeyError("device_name")

    results = run_checks([("accelerator.device", "Accelerator", broken)])
    assert (
        results[0].status is Status.CRASHED and results[0].message == "the check itself failed: KeyError: 'device_name'"
    )
    assert validate.summary(results) == [
        "Checks passed: 0/1",
        "Errors: 1",
        "Warnings: 0",
        "Not ready: fix the errors above.",
    ]


# models on disk: written here byte by byte, as safetensors files are


def write_safetensors(path: Path, tensors: dict[str, int]) -> None:
    """A real safetensors file: 8-byte header length, JSON header, then the bytes."""
    header, offset = {}, 0
    for name, size in tensors.items():
        header[name] = {"dtype": "U8", "shape": [size], "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def make_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "qwen2"}')
    (folder / "tokenizer.json").write_text("{}")
    write_safetensors(folder / "model-00001-of-00002.safetensors", {"a": 100})
    write_safetensors(folder / "model-00002-of-00002.safetensors", {"b": 50})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})
    )
    return folder


def test_a_complete_model_has_no_problems(tmp_path):
    folder = make_model(tmp_path / "qwen25-coder-7b")
    assert store.model_problems(folder) == []
    result = validate.model_check(folder, [], store.size_on_disk(folder), "qwen7b")
    assert result.id == "models.qwen25-coder-7b" and result.status is Status.OK


def test_a_missing_shard_a_truncated_file_and_no_tokenizer_are_found(tmp_path):
    folder = make_model(tmp_path / "qwen25-coder-7b")
    (folder / "model-00002-of-00002.safetensors").unlink()
    shard = folder / "model-00001-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-10])
    (folder / "tokenizer.json").unlink()
    problems = store.model_problems(folder)
    assert "model-00002-of-00002.safetensors (named by the index) is missing" in problems
    assert any("model-00001-of-00002.safetensors is" in p and "header says" in p for p in problems)
    assert any(p.startswith("no tokenizer files") for p in problems)
    result = validate.model_check(folder, problems, 0, "qwen7b")
    assert result.status is Status.ERROR and result.fix == "invoke models.pull qwen7b --force"


def test_a_file_cut_inside_its_header_is_truncated(tmp_path):
    path = tmp_path / "x.safetensors"
    write_safetensors(path, {"a": 10})
    path.write_bytes(path.read_bytes()[:20])
    assert "truncated" in store.safetensors_problem(path)


def test_results_round_trip_through_json():
    assert Result.from_dict(Result("a.b", "t", Status.WARNING, "m", "f", ("d",), 0.5).as_dict()) == Result(
        "a.b", "t", Status.WARNING, "m", "f", ("d",), 0.5
    )


def test_a_crlf_block_an_older_version_wrote_is_stale(tmp_path):
    """zsh cannot parse it, so shell.install must be asked to rewrite it with LF."""
    settings = config.resolve({}, home=tmp_path)
    env = {"HOME": str(tmp_path), "SHELL": "/bin/zsh"}
    body = shellblock.render("zsh", settings.venv, settings.models, settings.catalog)
    (tmp_path / ".zshrc").write_bytes(rcfile.block_text(body).replace("\n", "\r\n").encode())
    assert validate.shell_check(validate.shell_blocks(settings, "linux", env)).status is Status.ERROR
    (tmp_path / ".zshrc").write_text(rcfile.block_text(body))
    assert validate.shell_check(validate.shell_blocks(settings, "linux", env)).status is Status.OK
