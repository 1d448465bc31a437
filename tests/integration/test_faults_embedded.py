"""Faults of the real embedded Triton during a load test: killed mid-run and restarted, a full queue,
an unknown model; and where it listens.

Each test that breaks a server starts its own (the session's ``triton_server`` stays healthy for the rest
of the suite).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import psutil
import pytest
from server_crash import CrashAndRestart  # noqa: E402

from trtclient.bench.session import BenchSpec, run_bench
from trtclient.loadtest.records import read_records
from trtclient.loadtest.schedule import Burst, Rate, Stop
from trtclient.loadtest.workload import FixedPrompt, Prompt
from trtclient.server.launcher import EmbeddedTriton, ServerHandle

pytestmark = pytest.mark.integration

PROMPT = "What is machine learning?"


def port_of(address: str) -> int:
    port = urlsplit(address if "://" in address else f"tcp://{address}").port
    assert port is not None
    return port


class _CrashingMidRun:
    """Fixed prompts; when prompt ``kill_at`` is drawn the server is killed (SIGKILL to its process
    group), when prompt ``restart_at`` is drawn a new one starts on the same ports, in a thread, while the
    run goes on."""

    def __init__(self, crash: CrashAndRestart, kill_at: int, restart_at: int) -> None:
        self.crash = crash
        self.kill_at = kill_at
        self.restart_at = restart_at
        self.description = "fixed prompt; server killed, then restarted mid-run"

    def prompts(self) -> Iterator[Prompt]:
        n = 0
        while True:
            if n == self.kill_at:
                self.crash.crash()
            if n == self.restart_at:
                self.crash.restart_in_background()
            yield Prompt(str(n), PROMPT, 8)
            n += 1


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_server_killed_mid_run_then_restarted_counts_every_request_once(
    tmp_path: Path, transport: Literal["http", "grpc"], leftovers: Callable[[], set[str]]
) -> None:
    total, kill_at, restart_at = 80, 12, 17
    records_path = tmp_path / "r.jsonl"
    server = EmbeddedTriton(profile="orin-int4")
    server.start()
    crash = CrashAndRestart(server)
    try:
        spec = BenchSpec(
            shape=Rate(10.0, "constant"),
            stop=Stop(requests=total),
            workload=_CrashingMidRun(crash, kill_at, restart_at),
            read_timeout_s=20.0,
            transport=transport,
            records_path=records_path,
            scrape_interval_s=0.2,
        )
        url = server.grpc_url if transport == "grpc" else server.url
        outcome = await run_bench(spec, url, metrics_url=server.metrics_url)
        crash.wait()
        assert crash.error is None, crash.error
    finally:
        crash.stop()
    assert leftovers() == set()

    records = outcome.result.records
    assert sorted(r.index for r in records) == list(range(total))
    assert sorted(r.index for r in read_records(records_path)) == list(range(total))
    failed = [r for r in records if r.status == "failed"]
    ok = [r for r in records if r.status == "ok"]
    assert len(ok) + len(failed) == total
    # In flight when the server died: the connection dropped; sent while it was down: refused.
    assert {r.error_kind for r in failed} <= {"disconnect", "connect"}
    assert any(r.error_kind == "connect" for r in failed)
    streamed = [r for r in failed if r.event_ns]
    assert streamed, "no request was in flight when the server died"
    assert {r.error_kind for r in streamed} == {"disconnect"}
    assert all(r.status == "ok" for r in records if r.index < kill_at - 6)
    # Recovered: the requests after the last failure succeed (gRPC reconnects with a backoff of seconds).
    assert max(r.index for r in failed) < total - 5
    counts = outcome.report.metrics.counts
    assert (counts.ok, counts.failed, counts.cancelled) == (len(ok), len(failed), 0)
    assert outcome.report.metrics.failures == {
        kind: sum(r.error_kind == kind for r in failed) for kind in {r.error_kind for r in failed}
    }
    e2e = outcome.report.metrics.e2e
    assert e2e is not None and e2e.count == len(ok)
    assert outcome.report.metrics.output_tokens is not None
    assert outcome.report.metrics.output_tokens.count == len(ok)


@pytest.fixture(scope="module")
def small_queue() -> Iterator[ServerHandle]:
    """A real Triton with batch size 1 and a queue of 1 in front of the engine, at the Orin pace."""
    with EmbeddedTriton(profile="orin-int4", max_batch_size=1, max_queue_size=1) as server:
        yield server.handle


async def test_real_queue_full_is_a_failure_with_tritons_words(small_queue: ServerHandle) -> None:
    """Through the ensemble, Triton 2.51 answers a full queue with 400 and an SSE error body (the
    tensorrt_llm model called directly answers 503)."""
    burst = 6
    spec = BenchSpec(
        shape=Burst(burst),
        stop=Stop(requests=burst),
        workload=FixedPrompt(PROMPT, 10),
        read_timeout_s=30.0,
        scrape_metrics=False,
    )
    outcome = await run_bench(spec, small_queue.url)
    records = outcome.result.records
    ok = [r for r in records if r.status == "ok"]
    failed = [r for r in records if r.status == "failed"]
    assert len(ok) + len(failed) == burst
    assert ok and failed
    for r in failed:
        assert (r.error_kind, r.http_status) == ("queue_full", 400)
        assert r.error_message is not None and "Exceeds maximum queue size" in r.error_message
        assert r.event_ns == []
    metrics = outcome.report.metrics
    assert metrics.failures == {"queue_full": len(failed)}
    assert metrics.ttft is not None and metrics.ttft.count == len(ok)


def test_embedded_server_listens_on_loopback_only(small_queue: ServerHandle) -> None:
    listening = [
        c.laddr
        for p in [psutil.Process(small_queue.pid), *psutil.Process(small_queue.pid).children(recursive=True)]
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    ports = {port_of(small_queue.url), port_of(small_queue.grpc_url), port_of(small_queue.metrics_url)}
    assert {addr.port for addr in listening} >= ports
    # gRPC listens on the IPv4-mapped form of 127.0.0.1 (::ffff:127.0.0.1); both are loopback.
    assert {_ipv4(addr.ip) for addr in listening} == {ipaddress.IPv4Address("127.0.0.1")}


def _ipv4(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def test_unknown_model_is_one_line(triton_server: ServerHandle) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "bench", "--url", triton_server.url, "--model", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "'nope'" in lines[0]


def test_missing_server_binary_is_one_line(tmp_path: Path) -> None:
    """A broken nvidia-pytriton install (the package without its tritonserver binary)."""
    broken = tmp_path / "site" / "pytriton"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(broken.parent)}
    for command in (["serve"], ["bench"]):
        result = subprocess.run(
            [sys.executable, "-m", "trtclient.cli", *command],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("trtclient: error:")]
        assert len(errors) == 1
        assert "tritonserver is missing or not executable; reinstall nvidia-pytriton" in errors[0]
