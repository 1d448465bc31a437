"""``trtclient serve --engine-dir`` end to end on a CPU machine: a real tritonserver, real readiness.

The engine directory is the embedded CPU engine (its ``config.json`` has TensorRT-LLM's engine layout),
rendered with ``--triton-backend python``; ``--tritonserver`` is the embedded binary, which needs the
prepared backend directory (``--backend-directory``) and the model environment first on PATH
(``Toolchain.env()``). World size 1: mpirun is not installed here.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from trtclient.server.deploy.launch import FIVE_MODELS, GpuTriton
from trtclient.server.engine import build_cpu_engine
from trtclient.server.tokenizer import default_tokenizer_dir
from trtclient.server.toolchain import Toolchain, prepare

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    return prepare()


@pytest.fixture
def engine(tmp_path: Path) -> Path:
    return build_cpu_engine(
        tmp_path / "engine", tokenizer_dir=default_tokenizer_dir(), profile="instant", max_batch_size=8
    )


def test_engine_dir_is_served_with_values_from_its_config(engine: Path, toolchain: Toolchain) -> None:
    server = GpuTriton(
        engine_dir=engine,
        tokenizer_dir=default_tokenizer_dir(),
        repository={"triton_backend": "python"},
        tritonserver=str(toolchain.tritonserver),
        backend_dir=toolchain.backend_dir,
        env=toolchain.env(),
        startup_timeout=60.0,
    )
    with server:
        url, pid, run_dir = server.handle.url, server.handle.pid, server.run_dir
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        index = httpx.post(f"{url}/v2/repository/index", json={}).json()
        assert {m["name"]: m["state"] for m in index} == {name: "READY" for name in FIVE_MODELS}
        config = httpx.get(f"{url}/v2/models/tensorrt_llm/config").json()
        assert config["max_batch_size"] == 8  # from the engine's build_config, not a default
        assert config["backend"] == "python"
        assert config["parameters"]["gpt_model_path"]["string_value"] == str(engine)
        answer = httpx.post(f"{url}/v2/models/ensemble/generate", json={"text_input": "The", "max_tokens": 4})
        assert answer.status_code == 200, answer.text
        assert isinstance(answer.json()["text_output"], str) and answer.json()["text_output"]
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert run_dir is not None and not run_dir.exists()


def _read_until(process: subprocess.Popen[bytes], marker: str, timeout: float) -> str:
    """Stdout of ``process`` up to and including ``marker``; fails on timeout or exit."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    text = ""
    while marker not in text:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            pytest.fail(f"no {marker!r} within {timeout} s; output so far:\n{text}")
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            pytest.fail(f"exited with {process.wait()} before {marker!r}; output:\n{text}")
        text += chunk.decode()
    return text


def test_serve_command_runs_until_ctrl_c(engine: Path, toolchain: Toolchain) -> None:
    command = [str(Path(sys.executable).parent / "trtclient"), "serve", "--engine-dir", str(engine)]
    command += ["--tokenizer-dir", str(default_tokenizer_dir()), "--triton-backend", "python"]
    command += [
        "--tritonserver",
        str(toolchain.tritonserver),
        "--backend-directory",
        str(toolchain.backend_dir),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=toolchain.env(), start_new_session=True
    )
    try:
        text = _read_until(process, "Press Ctrl-C to stop.", timeout=90.0)
        url = re.search(r"HTTP\s+(http://127\.0\.0\.1:\d+)", text)
        assert url is not None, text
        assert httpx.get(f"{url.group(1)}/v2/health/ready").status_code == 200
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0, rest
        assert "stopped" in rest.decode()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url.group(1)}/v2/health/ready")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
