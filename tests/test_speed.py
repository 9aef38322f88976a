"""Expected generation speed: the chip table, the estimate from bandwidth and bytes per token, the CPU's
plain answer, and a bench run on this machine overriding the estimate."""

import pytest

from mlxtasks import bench, catalog, config, inventory, speed
from mlxtasks.facts import GB, GIB, HostFacts


def mac(chip: str) -> HostFacts:
    return HostFacts(
        os="darwin", os_version="15.5", machine="arm64", chip=chip, ram_total=64 * GIB, ram_available=40 * GIB
    )


LINUX_CPU = HostFacts(
    os="linux", os_version="6", machine="x86_64", chip="EPYC", ram_total=8 * GIB, ram_available=6 * GIB
)


@pytest.mark.parametrize(
    "chip, name, bandwidth",
    [
        ("Apple M1", "M1", 68),
        ("Apple M1 Ultra", "M1 Ultra", 800),
        ("Apple M2 Pro", "M2 Pro", 200),
        ("Apple M3 Max", "M3 Max", 300),
        ("Apple M3 Ultra", "M3 Ultra", 819),
        ("Apple M4", "M4", 120),
        ("Apple M4 Pro", "M4 Pro", 273),
        ("Apple M4 Max", "M4 Max", 410),
        ("Apple M5", "M5", 153),
        ("Apple M5 Pro", "M5 Pro", 307),
        ("Apple M5 Max", "M5 Max", 460),
    ],
)
def test_each_chip_is_read_from_its_brand_string(chip, name, bandwidth):
    assert speed.chip_bandwidth(chip) == (name, bandwidth)


def test_every_chip_family_and_variant_has_a_sourced_figure():
    for family in ("M1", "M2", "M3", "M4"):
        for variant in ("", " Pro", " Max", " Ultra"):
            if family + variant == "M4 Ultra":  # Apple made none
                continue
            figure, source = speed.BANDWIDTH[family + variant]
            assert figure > 0 and ("apple.com" in source or "specifications" in source)
    assert speed.chip_bandwidth("Intel(R) Core(TM) i9") is None and speed.chip_bandwidth("Apple M9 Mega") is None


def test_the_estimate_is_bandwidth_over_the_bytes_read_per_token():
    qwen7b = catalog.find("qwen7b", catalog.BUILTIN)
    rate = speed.estimate(mac("Apple M4 Pro"), int(qwen7b.size_gb * GB))
    assert rate.tokens_per_s == pytest.approx(273 * 0.65 / 4.28) and rate.short == "~41/s"
    assert rate.text == "about 41 tokens/s, estimated from the M4 Pro's 273 GB/s and 4.3 GB read per token"
    moe = speed.estimate(
        mac("Apple M4 Pro"), int(17.17 * GB), active=0.11
    )  # a mixture of experts reads its active share
    assert moe.tokens_per_s == pytest.approx(273 * 0.65 / (17.17 * 0.11))
    assert (
        speed.estimate(mac("Apple M2 Ultra"), 4 * GB).tokens_per_s
        == 2 * speed.estimate(mac("Apple M2 Max"), 4 * GB).tokens_per_s
    )


def test_linux_cpu_says_plainly_that_a_7b_model_is_not_usable():
    small = speed.estimate(LINUX_CPU, int(0.1 * GB))
    assert (small.tokens_per_s, small.how, small.short) == (5.0, "cpu", "5/s")
    big = speed.estimate(LINUX_CPU, int(4.28 * GB))
    assert big.short == "<1/s" and "not usable for chat" in big.text and "a 7B model is not usable there" in big.text
    cuda = speed.estimate(HostFacts(**{**LINUX_CPU.__dict__, "nvidia_driver": (580,)}), GB)
    assert cuda.short == "?" and "invoke bench" in cuda.text


def bench_record(chip: str, alias: str, tps: float, date: str) -> dict:
    run = bench.mlx_run(128, 65, 0.1, 64 / tps, 4.5)
    return {
        "schema": bench.SCHEMA,
        "date": date,
        "machine": {"chip": chip, "backend": "metal"},
        "settings": {},
        "results": [
            {
                "alias": alias,
                "engine": "mlx",
                "name": f"/m/{alias}",
                "load_s": 1.0,
                "lengths": bench.by_length({1024: [run], 128: [run]}),
            }
        ],
        "skipped": [],
    }


def test_a_bench_run_on_this_chip_overrides_the_estimate_and_says_so(tmp_path):
    m4 = mac("Apple M4 Pro")
    records = [
        bench_record("Apple M4 Pro", "qwen7b", 30.0, "2026-01-01T10:00:00"),
        bench_record("Apple M4 Pro", "qwen7b", 35.0, "2026-02-01T10:00:00"),
        bench_record("Apple M1", "qwen7b", 9.0, "2026-03-01T10:00:00"),
    ]  # another machine's
    rate = speed.expected(m4, int(4.28 * GB), names={"qwen7b", "qwen25-coder-7b"}, records=records)
    assert (rate.how, rate.short) == ("measured", "35/s*")
    assert rate.text == "35.0 tokens/s, measured here by invoke bench (2026-02-01)"
    assert speed.expected(m4, int(4.28 * GB), names={"phi4"}, records=records).how == "estimated"
    s = config.resolve({}, home=tmp_path)
    for record in records:
        bench.append_history(s.bench.history, record)
    entries = {e["alias"]: e for e in inventory.listing(s, m4)["catalogue"]}
    assert entries["qwen7b"]["speed_short"] == "35/s*" and entries["phi4"]["speed"] == "estimated"
    rows = dict(
        line.split(None, 1)
        for line in inventory.info_lines(catalog.find("qwen7b", s.catalog), s.models, m4, speed.history(s))
    )
    assert rows["speed"] == "35.0 tokens/s, measured here by invoke bench (2026-02-01)"
