"""Our bench summary in GenAI-Perf's and AIPerf's layouts, read back by ``trtclient compare``'s readers.

The summary is ``fixtures/compare/bench_c2.json``, written by a real run against the embedded server.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from trtclient.bench.compare import load_run
from trtclient.bench.figures import key_figures
from trtclient.bench.peer_export import EXPORT_FORMATS, export_paths, peer_summary, write_peer_export
from trtclient.cli import main

BENCH = Path(__file__).parent / "fixtures" / "compare" / "bench_c2.json"


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_export_reads_back_with_the_same_figures(fmt: str, tmp_path: Path) -> None:
    ours = json.loads(BENCH.read_text())
    json_path, csv_path = write_peer_export(ours, fmt, tmp_path / "run.json")  # type: ignore[arg-type]
    run = load_run(json_path)
    assert run.kind == fmt  # compare tells the two layouts apart as it does their real files
    ((_, figures),) = run.rows
    expected = key_figures(ours)
    if fmt == "genai-perf":
        expected["failed"] = None  # GenAI-Perf's export carries no error count
    assert figures == pytest.approx(expected)
    assert csv_path.exists()


def test_their_metric_names_carry_our_definitions() -> None:
    ours = json.loads(BENCH.read_text())
    data = peer_summary(ours, "aiperf")
    assert data["inter_token_latency"]["p99"] == ours["tpot_ms"]["p99"]  # their ITL is our TPOT
    assert data["request_latency"]["avg"] == ours["e2e_ms"]["mean"]
    assert data["time_to_first_token"] == {
        "unit": "ms", **{k: ours["ttft_ms"][v] for k, v in (("avg", "mean"), ("min", "min"), ("max", "max"),
        ("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("std", "std"))}
    }  # fmt: skip
    assert data["request_count"]["avg"] == ours["requests"]["ok"]
    assert data["was_cancelled"] is False and data["error_request_count"]["avg"] == ours["requests"]["failed"]


@pytest.mark.parametrize(
    ("fmt", "header"),
    [
        ("genai-perf", ["Metric", "avg", "min", "max", "p99", "p95", "p90", "p75", "p50", "p25"]),
        ("aiperf", ["Metric", "avg", "min", "max", "p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95",
                    "p99", "std"]),
    ],
)  # fmt: skip
def test_csv_has_their_two_tables(
    fmt: str, header: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # without --json, the export goes to the current directory
    ours = json.loads(BENCH.read_text())
    _, csv_path = write_peer_export(ours, fmt, None if fmt == "aiperf" else tmp_path / "x.json")  # type: ignore[arg-type]
    rows = list(csv.reader(csv_path.read_text().splitlines()))
    blank = rows.index([])
    assert rows[0] == header
    ttft = next(r for r in rows[:blank] if r[0] == "Time To First Token (ms)")
    assert float(ttft[header.index("p50")]) == pytest.approx(ours["ttft_ms"]["p50"], abs=0.005)
    assert ttft[header.index("p25")] == ""  # a statistic we do not compute is left empty, not made up
    assert rows[blank + 1] == ["Metric", "Value"]
    assert any(r[0].startswith("Request Throughput") for r in rows[blank + 2 :])


def test_paths_follow_json_or_the_current_directory(tmp_path: Path) -> None:
    assert export_paths(tmp_path / "run.json", "genai-perf")[0] == tmp_path / "run_genai_perf.json"
    assert export_paths(None, "aiperf") == (
        Path("profile_export_aiperf.json"),
        Path("profile_export_aiperf.csv"),
    )


def test_compare_puts_the_exports_beside_ours_with_no_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = json.loads(BENCH.read_text())
    written = [write_peer_export(ours, fmt, tmp_path / "run.json")[0] for fmt in EXPORT_FORMATS]
    assert main(["compare", str(BENCH), *map(str, written)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "TTFT p99" in line)
    assert row.count("(+0.0%)") == 2  # both exports read back as exactly our figure
