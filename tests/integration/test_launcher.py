"""The launcher against the real tritonserver: readiness, failures, clean stops, timing profiles."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from trtclient.errors import PortInUseError, ServerStartError, SetupError
from trtclient.server.launcher import EMBEDDED_MODELS, EmbeddedTriton
from trtclient.server.profiles import get_profile
from trtclient.server.tokenizer import corpus_text, default_tokenizer_dir

pytestmark = pytest.mark.integration


@pytest.fixture()
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_start_serves_every_model_then_stop_leaves_nothing(leftovers: Callable[[], set[str]]) -> None:
    server = EmbeddedTriton(profile="instant")
    handle = server.start()
    try:
        index = httpx.post(f"{handle.url}/v2/repository/index", json={}).json()
        assert {m["name"]: m["state"] for m in index} == {name: "READY" for name in EMBEDDED_MODELS}
        assert httpx.get(handle.metrics_url).text.count("nv_inference_request_success") > 0
        assert leftovers()
    finally:
        server.stop()
    assert leftovers() == set()
    with pytest.raises(ProcessLookupError):
        os.killpg(handle.pid, 0)


def test_failed_start_reports_exit_code_and_log_and_leaves_nothing(leftovers: Callable[[], set[str]]) -> None:
    server = EmbeddedTriton(extra_args=["--model-control-mode=bogus"])
    with pytest.raises(ServerStartError) as caught:
        server.start()
    assert caught.value.returncode not in (None, 0)
    assert "model-control-mode" in caught.value.log_tail
    assert leftovers() == set()


def test_port_in_use_is_one_clear_error(taken_port: int, leftovers: Callable[[], set[str]]) -> None:
    with pytest.raises(PortInUseError, match=f"port {taken_port} on 127.0.0.1 is already in use"):
        EmbeddedTriton(http_port=taken_port).start()
    assert leftovers() == set()


def test_unknown_profile_is_one_clear_error() -> None:
    with pytest.raises(SetupError, match="unknown profile 'nope'; choose one of: instant"):
        EmbeddedTriton(profile="nope").start()


def test_kv_cache_fraction_out_of_range_is_one_clear_error() -> None:
    with pytest.raises(SetupError, match=r"kv_cache_free_gpu_mem_fraction must be in \(0, 1\], got 1.2"):
        EmbeddedTriton(profile="orin-int4", kv_cache_free_gpu_mem_fraction=1.2).start()


def test_missing_model_python_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTCLIENT_MODEL_PYTHON", "/nonexistent/python3.11")
    with pytest.raises(SetupError, match="apt-get install python3.11"):
        EmbeddedTriton().start()


def test_unwritable_cache_dir_says_what_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TRTCLIENT_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(SetupError, match="set TRTCLIENT_CACHE_DIR to a writable directory"):
        EmbeddedTriton().start()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--max-batch-size", "0"], "--max-batch-size must be at least 1"),
        (["--http-port", "70000"], "--http-port must be between 1 and 65535"),
        (["--dry-run"], "--dry-run applies only with --engine-dir"),
        (
            ["--kv-cache-free-gpu-mem-fraction", "1.5"],
            "kv_cache_free_gpu_mem_fraction must be in (0, 1], got 1.5",
        ),
        (
            ["--kv-cache-free-gpu-mem-fraction", "0"],
            "kv_cache_free_gpu_mem_fraction must be in (0, 1], got 0.0",
        ),
        (["--kv-cache-tokens", "0"], "--kv-cache-tokens must be at least 1, got 0"),
    ],
)
def test_cli_mistakes_print_one_line_and_exit_nonzero(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "serve", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_port_in_use(taken_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "serve", "--http-port", str(taken_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def prompt_of(tokens: int) -> str:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(default_tokenizer_dir() / "tokenizer.json"))
    ids = tokenizer.encode(" ".join(corpus_text().split())).ids[:tokens]
    return str(tokenizer.decode(ids))


def test_orin_profile_timing_is_near_the_profile() -> None:
    """Generous bounds only: the precise figures are printed by benchmarks/embedded_server.py."""
    profile = get_profile("orin-int4")
    prompt = prompt_of(128)
    with EmbeddedTriton(profile="orin-int4") as server:
        body = {"text_input": prompt, "max_tokens": 12, "stream": True, "return_perf_metrics": True}
        arrivals: list[float] = []
        sent = time.perf_counter()
        with httpx.stream(
            "POST", f"{server.url}/v2/models/ensemble/generate_stream", json=body, timeout=30
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    arrivals.append(time.perf_counter())
                    last = json.loads(line[6:])
    ttft = arrivals[0] - sent
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    expected_ttft = profile.context_seconds(128)
    expected_gap = profile.step_seconds(1, 128)
    assert 0.7 * expected_ttft < ttft < 3 * expected_ttft
    assert 0.7 * expected_gap < statistics.median(gaps) < 2 * expected_gap
    engine_ttft = (last["first_token_time_ns"] - last["arrival_time_ns"]) / 1e9
    assert 0.9 * expected_ttft < engine_ttft < 2 * expected_ttft


def test_closing_a_direct_stream_cancels_it_in_the_engine() -> None:
    """With batch size 1, a request queued behind an abandoned 300-token stream starts at once only if
    the engine saw the cancellation (Triton 2.51 tells it when called directly, not through the ensemble).
    """
    direct = {
        "input_ids": [57, 74, 274],
        "input_lengths": [3],
        "request_output_len": [300],
        "streaming": [True],
    }
    with EmbeddedTriton(profile="orin-int4", max_batch_size=1) as server:
        target = f"{server.url}/v2/models/tensorrt_llm/generate_stream"
        with httpx.stream("POST", target, json=direct, timeout=30) as response:
            assert response.status_code == 200
            first = next(line for line in response.iter_lines() if line.startswith("data: "))
            assert "output_ids" in first
        # Connection closed after one token; 299 more would take ~8.5 s at this profile's pace.
        queued = {**direct, "request_output_len": [2], "streaming": [False], "return_perf_metrics": [True]}
        answer = httpx.post(f"{server.url}/v2/models/tensorrt_llm/generate", json=queued, timeout=30).json()
        waited = (answer["first_scheduled_time_ns"] - answer["arrival_time_ns"]) / 1e9
    assert waited < 2.0


def test_a_killed_launcher_leaves_no_server_behind(tmp_path: Path) -> None:
    """SIGKILL gives the launching process no chance to clean up; the parent-death signal still stops
    the server."""
    script = tmp_path / "launch.py"
    script.write_text(
        "import sys\n"
        "from trtclient.server.launcher import EmbeddedTriton\n"
        "server = EmbeddedTriton(profile='instant')\n"
        "handle = server.start()\n"
        "print(handle.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as launcher:
        assert launcher.stdout is not None
        server_pid = int(launcher.stdout.readline())
        assert psutil.pid_exists(server_pid)
        launcher.kill()
        launcher.wait(timeout=10)
    psutil.wait_procs([psutil.Process(server_pid)], timeout=15)
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
