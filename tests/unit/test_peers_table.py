"""The pure parts of ``python -m benchmarks peers``: reading each tool's summary into the side-by-side table,
and linking perf_analyzer's libraries under their plain names. Fixtures: ``fixtures/peers/README.md``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.peer_tools import InstallError, agreement_table, link_libraries, read_export

FIXTURES = Path(__file__).parent / "fixtures"
GENAI = FIXTURES / "peers" / "profile_export_genai_perf.json"
AIPERF = FIXTURES / "peers" / "profile_export_aiperf.json"
BENCH = FIXTURES / "compare" / "bench_c2.json"


def test_genai_perf_inter_token_latency_is_our_tpot_and_it_has_no_itl() -> None:
    row = read_export("genai-perf", GENAI)
    assert row.requests == 300
    assert (row.ttft_p50, row.ttft_p99) == (38.0, 72.0)
    assert (row.tpot_p50, row.tpot_p99) == (19.0, 36.0)
    assert (row.itl_p50, row.itl_p99) == (None, None)


def test_aiperf_inter_chunk_latency_is_our_itl() -> None:
    row = read_export("aiperf", AIPERF)
    assert row.requests == 300
    assert row.ttft_p50 == pytest.approx(39.9)
    assert row.tpot_p99 == pytest.approx(36.9)
    assert row.itl_p50 == pytest.approx(19.38)
    assert row.itl_p99 == pytest.approx(36.72)


def test_bench_summary_fills_every_column() -> None:
    summary = json.loads(BENCH.read_text())
    row = read_export("trtclient", BENCH)
    assert row.requests == summary["requests"]["ok"]
    assert row.ttft_p99 == summary["ttft_ms"]["p99"]
    assert row.tpot_p50 == summary["tpot_ms"]["p50"]
    assert row.itl_p99 == summary["itl_ms"]["p99"]


def test_times_in_seconds_become_milliseconds(tmp_path: Path) -> None:
    data = json.loads(GENAI.read_text())
    data["time_to_first_token"] = {"unit": "s", "p50": 0.038, "p99": 0.072}
    path = tmp_path / "export.json"
    path.write_text(json.dumps(data))
    row = read_export("genai-perf", path)
    assert row.ttft_p50 == pytest.approx(38.0)
    assert row.ttft_p99 == pytest.approx(72.0)


def test_table_lines_up_and_marks_missing_figures() -> None:
    lines = agreement_table([read_export(t, p) for t, p in (("trtclient", BENCH), ("genai-perf", GENAI))])
    assert lines[0].split() == [
        "tool",
        "requests",
        "TTFT",
        "p50",
        "TTFT",
        "p99",
        "TPOT",
        "p50",
        "TPOT",
        "p99",
        "ITL",
        "p50",
        "ITL",
        "p99",
    ]
    assert len({len(line) for line in lines}) == 1
    genai = lines[2].split()
    assert genai[:4] == ["genai-perf", "300", "38.00", "72.00"]
    assert genai[-2:] == ["-", "-"]


def test_mangled_libraries_are_linked_under_plain_names(tmp_path: Path) -> None:
    libs = tmp_path / "nvidia_pytriton.libs"
    libs.mkdir()
    for name in ("libb64-98cb6333.so.0d", "libcudart-09529672.so.12.6.77", "libcurl-75a2bf80.so.4.7.0"):
        (libs / name).write_bytes(b"")
    linked = link_libraries(libs, tmp_path / "linked")
    assert sorted(p.name for p in linked.iterdir()) == ["libb64.so.0d", "libcudart.so.12"]
    assert (linked / "libcudart.so.12").resolve() == libs / "libcudart-09529672.so.12.6.77"
    link_libraries(libs, linked)  # a second run replaces the links
    assert (linked / "libb64.so.0d").resolve() == libs / "libb64-98cb6333.so.0d"


def test_a_missing_library_is_a_clear_install_error(tmp_path: Path) -> None:
    libs = tmp_path / "nvidia_pytriton.libs"
    libs.mkdir()
    (libs / "libb64-98cb6333.so.0d").write_bytes(b"")
    with pytest.raises(InstallError, match=r"libcudart\.so\.12: no file matching"):
        link_libraries(libs, tmp_path / "linked")
