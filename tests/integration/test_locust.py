"""The Locust scenarios as real Locust processes, headless, against the real embedded Triton.

Standalone, ``--processes 2``, and a master with two worker processes: exit codes, Locust's CSV rows,
the token files, and the values against the engine's own timestamps (``return_perf_metrics``). Also
the first-token accuracy against a fast loopback source with the same bounds as ``trtclient bench``
(``tests/integration/test_bench.py``), the web UI's token tabs and live chart, and one-line messages for user
mistakes. Every process is started in its own process group and killed with its children, even when
a test fails; tests wait for processes to end or for observable progress, never for a fixed time.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from trtclient import exit_codes
from trtclient.loadtest import metrics as m
from trtclient.loadtest.records import RequestRecord, read_records
from trtclient.server.launcher import ServerHandle, free_port

pytestmark = [pytest.mark.integration, pytest.mark.locust]

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILES = ROOT / "locustfiles"
REQUEST_ROW = ("POST", "/v2/models/ensemble/generate_stream")
STARTED_SERVER = "starting the embedded Triton"
TOTALS = re.compile(r"(test|worker) totals: (.*)")
NS_SVG = "http://www.w3.org/2000/svg"


# ---------------------------------------------------------------- processes


class Locust:
    """One ``locust`` command in its own process group, output in a file."""

    def __init__(self, log: Path, scenario: str, *args: str) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / scenario), *args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 90.0) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM (Locust stops its embedded server on the way out), then SIGKILL whatever is left."""
        try:
            family = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(True)]
        except psutil.NoSuchProcess:
            family = []
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self.process.wait(10)


@pytest.fixture()
def locusts(tmp_path: Path) -> Iterator[list[Locust]]:
    """Start Locust processes with ``start(name, scenario, *args)``; all are stopped at the end."""
    started: list[Locust] = []
    yield started
    for process in started:
        process.stop()


def start(started: list[Locust], tmp_path: Path, name: str, scenario: str, *args: str) -> Locust:
    process = Locust(tmp_path / f"{name}.log", scenario, *args)
    started.append(process)
    return process


def finish(process: Locust, timeout: float = 90.0) -> tuple[int, str]:
    code = process.wait(timeout)
    return code, process.output


# ---------------------------------------------------------------- outputs


def locust_rows(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with Path(f"{prefix}_stats.csv").open(newline="") as file:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}


def token_rows(prefix: Path) -> dict[str, dict[str, str]]:
    with Path(f"{prefix}_tokens.csv").open(newline="") as file:
        return {row["Metric"]: row for row in csv.DictReader(file)}


def throughput(prefix: Path) -> dict[str, float]:
    with Path(f"{prefix}_throughput.csv").open(newline="") as file:
        return {row["Name"]: float(row["Value"]) for row in csv.DictReader(file)}


def totals(output: str, role: str) -> list[dict[str, int]]:
    found = []
    for who, pairs in TOTALS.findall(output):
        if who == role:
            found.append({k: int(v) for k, v in (pair.split("=") for pair in pairs.split())})
    return found


def records_of(*paths: Path) -> list[RequestRecord]:
    return [r for path in paths for r in read_records(path)]


def epoch(ns: int, r: RequestRecord) -> int:
    return ns + r.epoch_offset_ns


def check_rows_agree(prefix: Path, records: list[RequestRecord]) -> None:
    """Locust's rows, the token CSV and the records count the same requests and samples."""
    ok = [r for r in records if r.status == "ok"]
    failed = [r for r in records if r.status == "failed"]
    rows = locust_rows(prefix)
    tokens = token_rows(prefix)
    row = rows[REQUEST_ROW]
    assert (int(row["Request Count"]), int(row["Failure Count"])) == (len(ok) + len(failed), len(failed))
    gaps = sum(len(m.itl_ns(r)) for r in ok)
    for metric, count in (("TTFT", len(ok)), ("ITL", gaps), ("TPOT", len(ok)), ("E2E", len(ok))):
        assert int(rows[(metric, "ensemble")]["Request Count"]) == count, metric
        assert int(tokens[metric]["Count"]) == count, metric
        # Locust's average and ours come from the same samples (Locust rounds only its percentiles).
        locust_avg = float(rows[(metric, "ensemble")]["Average Response Time"])
        assert float(tokens[metric]["Mean"]) == pytest.approx(locust_avg, abs=0.002), metric
    assert int(rows[("", "Aggregated")]["Request Count"]) == len(ok) + len(failed)  # token rows not in it
    ttft_ms = sorted(m.ttft_ns(r) / 1e6 for r in ok)  # type: ignore[operator]
    assert float(tokens["TTFT"]["Min"]) == pytest.approx(ttft_ms[0], abs=0.001)
    assert float(tokens["TTFT"]["Max"]) == pytest.approx(ttft_ms[-1], abs=0.001)
    assert throughput(prefix)["output_tokens"] == sum(r.output_tokens or 0 for r in ok)


def first_token_lags_ms(records: list[RequestRecord]) -> list[float]:
    return [lag / 1e6 for lag in map(m.engine_first_token_lag_ns, records) if lag is not None]


# ---------------------------------------------------------------- standalone


def test_burst_defaults_are_the_tutorials_twenty_at_once_and_the_test_ends_by_itself(
    tmp_path: Path, locusts: list[Locust]
) -> None:
    prefix, html, records = tmp_path / "run", tmp_path / "report.html", tmp_path / "records.jsonl"
    process = start(
        locusts,
        tmp_path,
        "burst",
        "burst.py",
        "--headless",
        "--server-profile",
        "instant",
        "--csv",
        str(prefix),
        "--html",
        str(html),
        "--records",
        str(records),
    )
    code, output = finish(process)
    assert code == 0, output[-3000:]
    assert output.count(STARTED_SERVER) == 1
    assert "Traceback" not in output
    got = list(read_records(records))
    assert len(got) == 20 and all(r.status == "ok" for r in got)
    assert len({epoch(r.intended_ns, r) for r in got}) == 1  # one burst: twenty arrivals at once
    assert all((r.output_tokens, r.output_tokens_source) == (20, "server") for r in got)  # max_tokens 20
    check_rows_agree(prefix, got)
    # Against the engine's own clock: the first token never arrives before the engine produced it,
    # and TTFT covers that moment.
    lags = first_token_lags_ms(got)
    assert len(lags) == 20 and min(lags) >= -1.0
    for r in got:
        assert r.sent_ns is not None and r.headers_ns is not None
        assert epoch(r.sent_ns, r) <= r.engine_ns["first_token_time_ns"] + 1_000_000
    (summary,) = totals(output, "test")
    assert (summary["ok"], summary["failed"], summary["scheduled"], summary["unsent"]) == (20, 0, 20, 0)
    page = html.read_text()
    assert page.index('id="trtclient-token-metrics"') < page.rindex("</body>")
    assert "<td>Time to first token (TTFT)</td>" in page


def test_processes_2_share_one_open_loop_rate_and_one_server(tmp_path: Path, locusts: list[Locust]) -> None:
    prefix, records = tmp_path / "run", tmp_path / "records.jsonl"
    port = free_port()
    process = start(
        locusts,
        tmp_path,
        "rate",
        "rate.py",
        "--headless",
        "--processes",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "--master-port",
        str(port),
        "--server-profile",
        "instant",
        "--rate",
        "20",
        "--arrival",
        "constant",
        "-u",
        "8",
        "-t",
        "4s",
        "--csv",
        str(prefix),
        "--records",
        str(records),
    )
    code, output = finish(process)
    assert code == 0, output[-3000:]
    assert output.count(STARTED_SERVER) == 1  # on the master, not on the forked workers
    files = [tmp_path / "records.jsonl.worker0", tmp_path / "records.jsonl.worker1"]
    per_worker = [list(read_records(f)) for f in files]
    assert all(per_worker), "both workers sent requests"
    got = [r for part in per_worker for r in part]
    check_rows_agree(prefix, got)
    # One schedule for the whole test: constant arrivals 50 ms apart, whichever worker sent them.
    sent = sorted(epoch(r.intended_ns, r) for r in got)
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert len(got) >= 60
    assert all(abs(gap - 50_000_000) < 1000 for gap in gaps), Counter(round(g / 1e6, 1) for g in gaps)
    figures = throughput(prefix)
    ended = figures["requests_ok"] + figures["requests_failed"] + figures["requests_cancelled"]
    assert figures["arrivals_scheduled"] == ended + figures["arrivals_unsent"]
    assert ended == len(got)
    workers = totals(output, "worker")
    (master,) = totals(output, "test")
    assert len(workers) == 2
    for key in ("ok", "failed", "cancelled", "scheduled", "output_tokens", "n_ttft", "n_itl"):
        assert master[key] == sum(w[key] for w in workers), key


def test_master_with_two_worker_processes_adds_up_the_workers(tmp_path: Path, locusts: list[Locust]) -> None:
    prefix, records = tmp_path / "run", tmp_path / "records.jsonl"
    port = free_port()
    workers = [
        start(locusts, tmp_path, f"worker{i}", "burst.py", "--worker", "--master-port", str(port))
        for i in range(2)
    ]
    master = start(
        locusts,
        tmp_path,
        "master",
        "burst.py",
        "--headless",
        "--master",
        "--expect-workers",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "--server-profile",
        "instant",
        "--burst-size",
        "10",
        "--bursts",
        "3",
        "--burst-interval",
        "1",
        "--csv",
        str(prefix),
        "--records",
        str(records),
    )
    code, output = finish(master)
    assert code == 0, output[-3000:]
    worker_outputs = [finish(w, 30) for w in workers]
    assert [c for c, _ in worker_outputs] == [0, 0], [o[-2000:] for _, o in worker_outputs]
    assert output.count(STARTED_SERVER) == 1
    assert all(STARTED_SERVER not in o for _, o in worker_outputs)
    per_worker = [list(read_records(tmp_path / f"records.jsonl.worker{i}")) for i in range(2)]
    assert sorted(len(part) for part in per_worker) == [15, 15]  # 10 users split 5/5, arrivals dealt alike
    got = [r for part in per_worker for r in part]
    assert all(r.status == "ok" for r in got)
    check_rows_agree(prefix, got)
    bursts = sorted(Counter(epoch(r.intended_ns, r) for r in got).items())
    assert [n for _, n in bursts] == [10, 10, 10]
    assert [b[0] - a[0] for a, b in zip(bursts, bursts[1:], strict=False)] == [1_000_000_000] * 2
    (master_totals,) = totals(output, "test")
    worker_totals = [totals(o, "worker")[0] for _, o in worker_outputs]
    for key in ("ok", "failed", "cancelled", "scheduled", "output_tokens", "n_ttft", "n_itl", "n_e2e"):
        assert master_totals[key] == sum(w[key] for w in worker_totals), key
    assert master_totals["ok"] == 30


# ---------------------------------------------------------------- first-token accuracy


@pytest.fixture()
def fast_source() -> Iterator[str]:
    """``benchmarks/sse_source.py``: headers at once, then one event every 50 ms, each stamped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.sse_source", "--delay-ms", "50"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split("listening on ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def measured_wave(records: list[RequestRecord], warmup: int) -> list[RequestRecord]:
    """Every request but the first ``warmup`` sent (the bench's warm-up, for the same comparison)."""
    ordered = sorted(records, key=lambda r: epoch(r.sent_ns or 0, r))
    return ordered[warmup:]


def test_ttft_is_the_first_token_not_the_headers_and_within_the_benchs_bounds(
    tmp_path: Path, locusts: list[Locust], fast_source: str
) -> None:
    """The source sends its headers at once and each token 50 ms apart, stamping each token right before
    writing it: TTFT must be the token's arrival (>= 50 ms), not the headers', and the lag behind the
    source's stamp the bench's bound (64 streams, under 1.5k events/s)."""
    records = tmp_path / "records.jsonl"
    process = start(
        locusts,
        tmp_path,
        "fast",
        "concurrency.py",
        "--headless",
        "--host",
        fast_source,
        "-u",
        "64",
        "-r",
        "80",  # streams start spread over one stream's length (16 x 50 ms), not in lockstep
        "--max-tokens",
        "16",
        "-t",
        "4s",
        "--records",
        str(records),
        "--only-summary",
    )
    code, output = finish(process)
    assert code == 0, output[-3000:]
    got = [r for r in read_records(records) if r.status == "ok"]
    events = sum(len(r.event_ns) for r in got)
    span = max(epoch(r.end_ns or 0, r) for r in got) - min(epoch(r.sent_ns or 0, r) for r in got)
    assert events / (span / 1e9) < 1500
    wave = measured_wave(got, 64)
    assert len(wave) >= 64
    for r in wave:
        assert m.tth_ns(r) is not None and m.tth_ns(r) < 40_000_000  # type: ignore[operator]
        assert m.ttft_ns(r) >= 49_000_000  # type: ignore[operator]
    # Events handed on as they arrive keep the source's spacing; buffered ones would bunch up.
    itl = m.summarize(gap / 1e6 for r in wave for gap in m.itl_ns(r))
    assert itl is not None and 45.0 <= itl.p50 <= 55.0, itl
    assert [r.arrival_clock for r in wave] == ["kernel"] * len(wave)
    s = m.summarize(first_token_lags_ms(wave))
    assert s is not None and s.count == len(wave)
    assert s.min >= -1.0, s  # never before the source wrote it (1 ms clock tolerance)
    assert s.p99 <= 5.0, s


def test_first_token_lag_against_the_cpu_engine_timestamps(tmp_path: Path, locusts: list[Locust]) -> None:
    """The embedded Triton (orin-int4 profile) started by Locust itself, at the bench's load (64 streams of
    16 tokens) and with the bench's bound: the engine stamps each token just before sending it, so the lag
    is Triton's postprocessing and HTTP path plus the client, and it is never negative."""
    records = tmp_path / "records.jsonl"
    process = start(
        locusts,
        tmp_path,
        "orin",
        "concurrency.py",
        "--headless",
        "--server-profile",
        "orin-int4",
        "-u",
        "64",
        "--max-tokens",
        "16",
        "-t",
        "5s",
        "--stop-timeout",
        "5",
        "--records",
        str(records),
        "--only-summary",
    )
    code, output = finish(process)
    assert code == 0, output[-3000:]
    got = [r for r in read_records(records) if r.status == "ok"]
    wave = measured_wave(got, 64)
    assert len(wave) >= 32
    assert [r.arrival_clock for r in wave] == ["kernel"] * len(wave)
    s = m.summarize(first_token_lags_ms(wave))
    assert s is not None and s.count == len(wave)
    assert s.min >= -1.0, s
    assert s.p99 <= 10.0, s  # the bench's bound (tests/integration/test_bench.py)


# ---------------------------------------------------------------- web UI and mistakes


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
    return data


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_web_ui_shows_token_tabs_while_the_test_runs(
    tmp_path: Path, locusts: list[Locust], triton_server: ServerHandle
) -> None:
    port = free_port()
    process = start(
        locusts,
        tmp_path,
        "web",
        "concurrency.py",
        "--autostart",
        "--autoquit",
        "0",
        "--web-host",
        "127.0.0.1",
        "--web-port",
        str(port),
        "--host",
        triton_server.url,
        "-u",
        "2",
        "-t",
        "30s",
        "--max-tokens",
        "8",
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    latency: list[dict[str, str]] = []
    while time.monotonic() < deadline and process.process.poll() is None:
        with contextlib.suppress(OSError):
            tabs: Any = get_json(f"{base}/stats/requests").get("extended_stats", [])
            extended = {e["key"]: e["data"] for e in tabs}
            latency = extended.get("trtclient-latency", [])
            if any(row["metric"] == "TTFT" and int(row["count"]) >= 5 for row in latency):
                break
        time.sleep(0.2)  # polling for progress a real browser would show
    assert any(row["metric"] == "TTFT" for row in latency), process.output[-3000:]
    assert latency[0]["title"] == "Time to first token (TTFT)"
    main = [row["metric"] for row in latency if row["metric"] in ("TTFT", "ITL", "TPOT", "E2E", "ttft_sched")]
    assert main == ["TTFT", "ITL", "TPOT", "E2E", "ttft_sched"]
    page = get_text(base + "/")
    assert '"title": "Token latency"' in page and '"title": "Token throughput"' in page
    assert "./trtclient/chart" in page
    assert "TTFT,ensemble," in get_text(base + "/trtclient/tokens.csv")
    assert "requests_ok," in get_text(base + "/trtclient/throughput.csv")
    # the requests by KV-cache hit or miss (the engine reports its reuse per request)
    assert '"title": "By KV cache / turn / adapter"' in page
    workload_csv = get_text(base + "/trtclient/workload.csv").splitlines()
    assert workload_csv[0].startswith("Split,Group,OK,Failed,KV hit rate,TTFT 50%")
    assert any(line.startswith(("kv_cache,miss,", "kv_cache,hit,")) for line in workload_csv[1:])
    tabs = get_json(f"{base}/stats/requests").get("extended_stats", [])
    workload = {e["key"]: e["data"] for e in tabs}["trtclient-workload"]
    assert {row["title"] for row in workload} == {"KV cache"} and all(int(row["ok"]) > 0 for row in workload)
    chart = get_text(base + "/trtclient/chart")
    assert "timeline.json" in chart and "<svg" in chart and "http" not in chart.replace(NS_SVG, "")

    # The live chart's series grows while the test runs, and its points are plausible.
    first: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    series: Any = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.process.poll() is None:
        with contextlib.suppress(OSError):
            series = get_json(f"{base}/trtclient/timeline.json")
            points = series["points"]
            first = first or points
            busy = [p for p in points if p["ttft_count"] and p["output_tokens_per_s"] > 0]
            if len(points) >= len(first) + 2 and len(busy) >= 3:
                break
        time.sleep(0.2)  # polling for progress, as the chart page does
    assert series["interval_s"] == 2
    assert len(points) >= len(first) + 2 and first, (first, points, process.output[-3000:])
    assert [p["t"] for p in points[: len(first)]] == [p["t"] for p in first]  # grows at the end
    times = [p["t"] for p in points]
    assert all(1.5 <= b - a <= 10 for a, b in zip(times, times[1:], strict=False)), times
    busy = [p for p in points if p["ttft_count"] and p["output_tokens_per_s"] > 0]
    assert len(busy) >= 3, points
    for p in busy:
        # two users streaming 8 tokens from the CPU engine: TTFT of milliseconds to seconds
        assert 0 < p["ttft_p50_ms"] <= p["ttft_p95_ms"] < 30_000, p
        assert 0 < p["output_tokens_per_s"] < 100_000, p
    # Locust caches /stats/requests for 2 s; by now it lists every row.
    requests_now: Any = get_json(f"{base}/stats/requests")
    assert [row["method"] for row in requests_now["stats"]] == ["POST", "TTFT", "ITL", "TPOT", "E2E", ""]
    assert requests_now["stats"][-1]["name"] == "Aggregated"
    figures = [e["data"] for e in requests_now["extended_stats"] if e["key"] == "trtclient-throughput"][0]
    assert [row["title"] for row in figures][:2] == [
        "Output tokens/s, last 10 s",
        "Output tokens/s, whole test",
    ]
    assert all("name" not in row for row in figures)  # the web UI would sort rows by it
    total_ttft = sum(p["ttft_count"] for p in points)
    ttft_rows = [
        r
        for e in requests_now["extended_stats"]
        if e["key"] == "trtclient-latency"
        for r in e["data"]
        if r["metric"] == "TTFT"
    ]
    assert 0 < total_ttft <= int(ttft_rows[0]["count"])
    process.process.send_signal(signal.SIGTERM)
    code, output = finish(process, 30)
    assert code == exit_codes.INTERRUPTED, output[-3000:]  # stopped mid-test: the shared code 130


def test_live_chart_on_a_master_adds_up_its_workers(
    tmp_path: Path, locusts: list[Locust], triton_server: ServerHandle
) -> None:
    port = free_port()
    process = start(
        locusts,
        tmp_path,
        "web-master",
        "rate.py",
        "--processes",
        "2",
        "--autostart",
        "--autoquit",
        "0",
        "--web-host",
        "127.0.0.1",
        "--web-port",
        str(port),
        "--host",
        triton_server.url,
        "--rate",
        "4",
        "-u",
        "16",
        "-t",
        "40s",
        "--max-tokens",
        "8",
    )
    base = f"http://127.0.0.1:{port}"
    series: Any = {}
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline and process.process.poll() is None:
        with contextlib.suppress(OSError):
            series = get_json(f"{base}/trtclient/timeline.json")
            if sum(1 for p in series["points"] if p["ttft_count"]) >= 3:
                break
        time.sleep(0.2)  # polling for progress, as the chart page does
    points = series.get("points", [])
    busy = [p for p in points if p["ttft_count"]]
    assert series.get("interval_s") == 3 and len(busy) >= 3, (series, process.output[-3000:])
    for p in busy:
        assert 0 < p["ttft_p50_ms"] <= p["ttft_p95_ms"] < 30_000, p
    # no TTFT is counted in two points: the points add up to at most the merged TTFT count
    later_series: Any = get_json(f"{base}/trtclient/timeline.json")  # read first: counts only grow
    later = later_series["points"]
    requests_now: Any = get_json(f"{base}/stats/requests")
    ttft = [
        r
        for e in requests_now["extended_stats"]
        if e["key"] == "trtclient-latency"
        for r in e["data"]
        if r["metric"] == "TTFT"
    ]
    assert sum(p["ttft_count"] for p in points) <= int(ttft[0]["count"])
    assert sum(p["ttft_count"] for p in later) <= int(ttft[0]["count"])
    assert any(p["output_tokens_per_s"] > 0 for p in later)
    process.process.send_signal(signal.SIGTERM)
    code, output = finish(process, 60)
    assert code == exit_codes.INTERRUPTED, output[-3000:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--host", "http://127.0.0.1:9"), "cannot load-test model 'ensemble' at http://127.0.0.1:9"),
        (("--bursts", "3"), "more than one burst needs --burst-interval"),
        (("--burst-size", "0"), "argument --burst-size: expected an integer >= 1, got '0'"),
    ],
    ids=["unreachable-host", "bursts-without-interval", "bad-burst-size"],
)
def test_user_mistakes_end_with_one_line_and_no_traceback(
    tmp_path: Path, locusts: list[Locust], args: tuple[str, ...], message: str
) -> None:
    code, output = finish(start(locusts, tmp_path, "mistake", "burst.py", "--headless", *args), 60)
    assert code == 2
    assert message in output
    assert "Traceback" not in output
    assert STARTED_SERVER not in output


@pytest.mark.parametrize(
    ("args", "unknown", "meant"),
    [
        (("--bursts-x", "2"), "--bursts-x", "--bursts"),
        (("--max-token", "5"), "--max-token", "--max-tokens"),
    ],
    ids=["scenario-flag", "abbreviated-trtclient-flag"],
)
def test_an_unknown_flag_gets_the_usage_and_did_you_mean_as_bench_says_it(
    tmp_path: Path, locusts: list[Locust], args: tuple[str, ...], unknown: str, meant: str
) -> None:
    """Not Locust's own wording, and no silent abbreviation: ``--max-token`` is refused, not taken for
    ``--max-tokens``; the hint is ``trtclient.cli.common.did_you_mean``'s, as in ``trtclient bench``."""
    code, output = finish(start(locusts, tmp_path, "unknown", "burst.py", "--headless", *args), 60)
    assert code == exit_codes.USAGE
    assert "usage: locust -f LOCUSTFILE" in output
    line = next(x for x in output.splitlines() if "error:" in x)
    assert line.startswith(f"locust: error: unrecognized arguments: {unknown} (did you mean {meant}")
    assert line.endswith("?)")
    assert "Did you mean" not in output and "Traceback" not in output
    assert STARTED_SERVER not in output


def test_a_param_the_model_lacks_is_refused_before_the_test(
    tmp_path: Path, locusts: list[Locust], triton_server: ServerHandle
) -> None:
    code, output = finish(
        start(
            locusts,
            tmp_path,
            "param",
            "burst.py",
            "--headless",
            "--host",
            triton_server.url,
            "--param",
            "max_token=5",
        ),
        60,
    )
    assert code == 2
    assert "has no input 'max_token'" in output and "Did you mean 'max_tokens'?" in output
    assert "Traceback" not in output


# ---------------------------------------------------------------- workloads


def test_shared_prefix_prompts_reuse_the_prefix_blocks(tmp_path: Path, locusts: list[Locust]) -> None:
    """``--shared-prefix 2:128 --input-tokens 16``: every prompt is one of two 128-token prefixes plus 16
    tokens of its own; one stream at a time, so after the first request of a prefix each reuses its two
    full 64-token blocks of the three the request holds (128 + 16 prompt + 4 output tokens)."""
    records = tmp_path / "records.jsonl"
    process = start(
        locusts,
        tmp_path,
        "prefix",
        "concurrency.py",
        "--headless",
        "--server-profile",
        "instant",
        "-u",
        "1",
        "--shared-prefix",
        "2:128",
        "--input-tokens",
        "16",
        "--max-tokens",
        "4",
        "--force-output-length",
        "-t",
        "3s",
        "--records",
        str(records),
        "--only-summary",
    )
    code, output = finish(process)
    assert code == 0, output[-3000:]
    every = sorted(read_records(records), key=lambda r: r.index)
    # the one user's request in flight when the time is up is cancelled; every other one is ok
    assert all(r.status in ("ok", "cancelled") for r in every)
    assert sum(r.status == "cancelled" for r in every) <= 1
    got = [r for r in every if r.status == "ok"]
    assert len(got) >= 4 and len(got) >= len(every) - 1
    assert {r.input_tokens for r in got} == {144}
    groups: dict[str, list[RequestRecord]] = {}
    for r in got:
        assert r.prompt_id is not None and r.prompt_id.startswith("prefix")
        groups.setdefault(r.prompt_id.split("-")[0], []).append(r)
    assert set(groups) <= {"prefix0", "prefix1"}
    for first, *rest in groups.values():
        assert m.kv_hit_rate(first) == 0.0
        assert [m.kv_hit_rate(r) for r in rest] == [pytest.approx(2 / 3)] * len(rest)


def test_shared_prefix_mistake_is_one_line(tmp_path: Path, locusts: list[Locust]) -> None:
    process = start(
        locusts, tmp_path, "bad", "concurrency.py", "--headless", "--shared-prefix", "2:x", "-t", "1s"
    )
    code, output = finish(process)
    assert code != 0
    assert "--shared-prefix takes N:P (N prefixes of P tokens, both positive integers), got '2:x'" in output
    assert "Traceback" not in output
