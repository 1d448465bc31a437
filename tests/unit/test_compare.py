"""``trtclient compare``: our JSON beside GenAI-Perf's and AIPerf's exports, and files it refuses.

The peer exports are fixtures in their real layout (see ``fixtures/compare/README.md``); ours come
from a real sweep of the embedded server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtclient.bench.compare import CompareError, compare_table, load_run, peer_figures, relative
from trtclient.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "compare"
GENAI = FIXTURES / "profile_export_genai_perf.json"
AIPERF = FIXTURES / "profile_export_aiperf.json"
BENCH = FIXTURES / "bench_c2.json"
SWEEP = FIXTURES / "sweep_c1_c4.json"


def test_each_kind_is_recognised() -> None:
    assert [load_run(p).kind for p in (BENCH, SWEEP, GENAI, AIPERF)] == [
        "bench",
        "sweep",
        "genai-perf",
        "aiperf",
    ]


def test_peer_figures_map_by_definition() -> None:
    data = json.loads(GENAI.read_text())
    figs = peer_figures(data)
    assert figs["ttft_p99"] == data["time_to_first_token"]["p99"]
    assert figs["tpot_p50"] == data["inter_token_latency"]["p50"]  # their ITL is our TPOT
    assert figs["e2e_p99"] == data["request_latency"]["p99"]
    assert figs["requests_per_s"] == data["request_throughput"]["avg"]
    assert figs["failed"] is None  # GenAI-Perf exports no error count
    assert peer_figures(json.loads(AIPERF.read_text()))["failed"] == 1.0


def test_seconds_are_read_as_seconds() -> None:
    data = {"time_to_first_token": {"unit": "s", "p99": 0.25, "p50": 0.1}}
    assert peer_figures(data)["ttft_p99"] == 250.0


def test_single_runs_side_by_side_with_differences(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(BENCH), str(GENAI), str(AIPERF)]) == 0
    out = capsys.readouterr().out
    ours = json.loads(BENCH.read_text())["ttft_ms"]["p99"]
    theirs = json.loads(GENAI.read_text())["time_to_first_token"]["p99"]
    row = next(line for line in out.splitlines() if "TTFT p99" in line)
    assert relative(theirs, ours) in row
    assert "bench_c2.json (bench)" in out and "(genai-perf)" in out and "(aiperf)" in out


def test_sweeps_compare_level_by_level(tmp_path: Path) -> None:
    other = json.loads(SWEEP.read_text())
    other["levels"][0]["ttft_ms"]["p99"] *= 2
    path = tmp_path / "slower.json"
    path.write_text(json.dumps(other))
    lines = compare_table([load_run(SWEEP), load_run(path)])
    assert next(line for line in lines if "c=1  TTFT p99" in line).endswith("(+100%)")
    assert next(line for line in lines if "c=2  TTFT p99" in line).endswith("(+0.0%)")


def test_compare_overlays_sweep_curves(tmp_path: Path) -> None:
    assert main(["compare", str(SWEEP), str(SWEEP), "--plots", str(tmp_path)]) == 0
    assert (tmp_path / "tokens_per_user.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([SWEEP, BENCH], "cannot compare files of different kinds: sweep_c1_c4.json (sweep), bench_c2.json"),
        ([BENCH], "at least two files"),
        ([BENCH, Path("nowhere.json")], "nowhere.json: no such file"),
        ([BENCH, GENAI, "--plots", "x"], "--plots overlays sweep curves"),
    ],
)
def test_bad_comparisons_get_one_line(
    files: list[Path | str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", *map(str, files)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_files_that_are_not_summaries_are_refused(tmp_path: Path) -> None:
    bad, other = tmp_path / "bad.json", tmp_path / "other.json"
    bad.write_text("{not json")
    other.write_text('{"hello": 1}')
    with pytest.raises(CompareError, match="not JSON"):
        load_run(bad)
    with pytest.raises(CompareError, match="not a summary compare knows"):
        load_run(other)


def test_files_of_the_same_name_are_told_apart_by_their_path(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / AIPERF.name).write_text(AIPERF.read_text())
    lines = compare_table([load_run(tmp_path / n / AIPERF.name) for n in ("a", "b")])
    assert str(tmp_path / "a" / AIPERF.name) in lines[0] and str(tmp_path / "b" / AIPERF.name) in lines[0]
