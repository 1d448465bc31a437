"""Sweeps and capacity searches against the real embedded Triton (``orin-int4``, two batch slots).

Two batch slots and ten output tokens cap the server near 5–6 requests/s. The SLO (TTFT p99 within
120 ms) holds at about 4 requests/s, well below that cap, so the answer R does not sit on the knee,
where a run's TTFT only reflects how long the queue had to grow; 1.5 R is beyond the cap. A search
from 2 req/s finds R in a handful of short steps (16 measured requests each, constant arrivals).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from trtclient.cli import main
from trtclient.server.launcher import EmbeddedTriton, ServerHandle

pytestmark = pytest.mark.integration

SLO_MS = 120.0
WORKLOAD = ["--max-tokens", "10", "--arrival", "constant", "--requests", "16", "--warmup", "2"]


@pytest.fixture(scope="module")
def two_slot_server() -> Iterator[ServerHandle]:
    with EmbeddedTriton(profile="orin-int4", max_batch_size=2) as server:
        yield server.handle


def target(server: ServerHandle) -> list[str]:
    return ["--url", server.url, "--metrics-url", server.metrics_url, "--no-progress"]


def bench_ttft_p99(server: ServerHandle, rate: float, path: Path) -> float:
    code = main(["bench", *target(server), "--rate", f"{rate:g}", *WORKLOAD, "--json", str(path)])
    assert code == 0
    summary = json.loads(path.read_text())
    assert summary["requests"]["failed"] == 0
    return float(summary["ttft_ms"]["p99"])


def test_capacity_answer_holds_in_a_separate_bench_and_half_again_breaks(
    two_slot_server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "capacity.json"
    code = main(
        ["capacity", *target(two_slot_server), "--slo", f"ttft:p99={SLO_MS:g}", "--start-rate", "2",
         *WORKLOAD, "--json", str(out), "--html", str(tmp_path / "capacity.html")]
    )  # fmt: skip
    console = capsys.readouterr().out
    assert code == 0, console
    document = json.loads(out.read_text())
    rate = document["max_rate"]
    assert rate is not None and rate >= 2
    assert f"capacity: {rate:g} req/s meets ttft p99 <= {SLO_MS:g} ms" in console
    assert f"{rate:g} req/s holds: ttft p99" in console and "req/s breaks: ttft p99" in console
    assert document["slos"] == {"ttft:p99": SLO_MS}
    breaks = document["confidence"]["breaks"]
    assert breaks is not None and breaks["rate"] > rate and document["confidence"]["gap"] <= 0.1
    assert document["server_at"]["holds"]["models"]["ensemble"]["queue_ms_per_request"] is not None
    for step in document["steps"]:
        assert step["schema"] == "trtclient.bench/1" and step["config"]["load"]["rate"] == step["rate"]
        within = step["ttft_ms"]["p99"] <= SLO_MS and step["requests"]["failed"] == 0
        fell_behind = any("fell behind" in reason for reason in step["reasons"])
        assert step["passed"] == (within and not fell_behind) and 0 < step["pace"] < 1.5
    assert f"{rate:g} req/s meets every SLO" in (tmp_path / "capacity.html").read_text()
    # The answer, checked by runs the search did not make.
    at_r = bench_ttft_p99(two_slot_server, rate, tmp_path / "at_r.json")
    above = bench_ttft_p99(two_slot_server, 1.5 * rate, tmp_path / "at_1.5r.json")
    assert at_r <= SLO_MS < above, (
        f"{rate} req/s: {at_r:.0f} ms, {1.5 * rate:g} req/s: {above:.0f} ms\n{console}"
    )


def test_sweep_json_has_one_bench_entry_per_level(
    two_slot_server: ServerHandle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep, single = tmp_path / "sweep.json", tmp_path / "bench.json"
    code = main(
        ["sweep", *target(two_slot_server), "--concurrency", "1:4:2", "--requests", "6", "--max-tokens", "4",
         "--warmup", "1", "--json", str(sweep), "--plots", str(tmp_path / "plots"),
         "--html", str(tmp_path / "sweep.html")]
    )  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert main(["bench", *target(two_slot_server), "--concurrency", "2", "--requests", "6",
                 "--max-tokens", "4", "--json", str(single)]) == 0  # fmt: skip
    document = json.loads(sweep.read_text())
    levels = document["levels"]
    assert [entry["config"]["load"]["concurrency"] for entry in levels] == [1, 2, 4]
    bench_keys = set(json.loads(single.read_text()))
    for entry in levels:
        assert set(entry) == bench_keys and entry["schema"] == "trtclient.bench/1"
        assert entry["requests"]["ok"] == 6 and entry["requests"]["warmup"] >= 1
        assert entry["config"]["warmup"] == {"requests": 1, "seconds": 0.0}
    rows = [line for line in table.splitlines() if line.strip().startswith("c=")]
    assert [row.split()[0] for row in rows] == ["c=1", "c=2", "c=4"]
    for png in ("throughput_latency.png", "tokens_per_user.png"):
        assert (tmp_path / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "sweep.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "c=4" in page  # opened in test_html_report
    # Our fresh run beside a GenAI-Perf export of the same shape.
    genai = Path(__file__).parents[1] / "unit" / "fixtures" / "compare" / "profile_export_genai_perf.json"
    assert main(["compare", str(single), str(genai)]) == 0
    assert "(genai-perf)" in capsys.readouterr().out


def test_a_sweep_takes_bench_workload_flags_and_reports_kv_hits_per_level(
    two_slot_server: ServerHandle, tmp_path: Path
) -> None:
    from trtclient.server.tokenizer import default_tokenizer_dir

    out = tmp_path / "sweep.json"
    code = main(
        ["sweep", *target(two_slot_server), "--tokenizer", str(default_tokenizer_dir()),
         "--concurrency", "1,2", "--shared-prefix", "2:128", "--input-tokens", "16", "--output-tokens", "4",
         "--requests", "6",
         "--warmup", "2", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    levels = json.loads(out.read_text())["levels"]
    assert [entry["config"]["load"]["concurrency"] for entry in levels] == [1, 2]
    hits = []
    for entry in levels:
        assert entry["requests"]["ok"] == 6
        assert "2 shared prefixes of 128 tokens" in entry["config"]["workload"]
        groups = {g["label"]: g for g in entry["workload"]["kv_cache"]}
        hits.append(groups["hit"]["ok"] if "hit" in groups else 0)
        assert groups["hit"]["kv_hit_rate"] > 0.5  # 2 of the prompt's 3 blocks are the shared prefix
    # Only a prefix's first request can miss, and the second level finds both prefixes cached.
    assert hits[0] >= 4 and hits[1] == 6
