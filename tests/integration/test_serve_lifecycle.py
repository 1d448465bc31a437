"""``trtclient serve`` as a process: stopped while starting, logs kept, the embedded binary serving an engine.

A server that is still starting is made by a model whose ``initialize`` waits for a file the test never
writes (it says it has started waiting by touching another file), so the signal always lands during the
start, whatever the machine's speed.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from trtclient.server.engine import build_cpu_engine
from trtclient.server.launcher import SHM_DIR, EmbeddedTriton
from trtclient.server.tokenizer import default_tokenizer_dir
from trtclient.server.toolchain import prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
from processes import alive, server_processes, wait_for  # noqa: E402

pytestmark = pytest.mark.integration

USER_REPOSITORY = Path(__file__).resolve().parents[1] / "fakes" / "user_repository"

_BLOCKING_INITIALIZE = """
    def initialize(self, args):
        import pathlib
        import time

        pathlib.Path({entered!r}).touch()
        while not pathlib.Path({release!r}).exists():
            time.sleep(0.05)
"""


def never_ready_folder(tmp_path: Path) -> tuple[Path, Path]:
    """The upstream-layout folder with a postprocessing model that never finishes loading."""
    folder = tmp_path / "templates"
    shutil.copytree(USER_REPOSITORY, folder)
    entered = tmp_path / "entered"
    model = folder / "postprocessing" / "1" / "model.py"
    text = model.read_text().replace("    def initialize(self, args):", "    def _setup(self, args):")
    text += _BLOCKING_INITIALIZE.format(entered=str(entered), release=str(tmp_path / "never"))
    model.write_text(text)
    return folder, entered


def serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trtclient.cli", "serve", "--profile", "instant", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 120.0) -> str:
    """stdout up to the line holding ``marker`` (fails if the process ends first)."""
    assert process.stdout is not None
    seen = ""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while marker not in seen:
            assert selector.select(timeout), f"no {marker!r} after {timeout} s; got {seen!r}"
            chunk = os.read(
                process.stdout.fileno(), 65536
            )  # not readline: its buffer hides lines from select
            assert chunk, f"serve ended before {marker!r}: {seen!r}"
            seen += chunk.decode()
    return seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_server_starts_stops_it_at_once(tmp_path: Path, sig: int) -> None:
    folder, entered = never_ready_folder(tmp_path)
    process = serve("--template-dir", str(folder), "--startup-timeout", "600")
    launcher = psutil.Process(process.pid)
    try:
        wait_for(entered.exists, "the postprocessing model to start loading", timeout=120)
        children = server_processes(launcher)
        assert children
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=60)  # far below the 600 s start-up timeout
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert lines[-1] == "trtclient: error: interrupted"
    assert lines[-2].startswith("log kept: ")  # a start that did not finish keeps its log
    assert "Triton is ready" not in stdout
    assert alive(children) == []
    assert list(SHM_DIR.glob(f"trtclient_{process.pid}_*")) == []


def test_keep_logs_keeps_only_the_log_after_a_stop_and_the_default_keeps_nothing() -> None:
    with EmbeddedTriton(profile="instant", keep_logs=True) as server:
        run_dir, log_path = server.run_dir, server.log_path
    assert run_dir is not None
    assert server.kept_log == log_path
    assert "successfully loaded 'ensemble'" in log_path.read_text()
    assert [entry.name for entry in run_dir.iterdir()] == [log_path.name]
    shutil.rmtree(run_dir)
    with EmbeddedTriton(profile="instant") as server:
        run_dir = server.run_dir
    assert run_dir is not None and not run_dir.exists()
    assert server.kept_log is None


def test_serve_engine_dir_with_the_embedded_binary_needs_no_extra_flags(tmp_path: Path) -> None:
    engine = build_cpu_engine(
        tmp_path / "engine", tokenizer_dir=default_tokenizer_dir(), profile="instant", max_batch_size=4
    )
    binary = str(prepare().tritonserver)
    clean_env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trtclient.cli",
            "serve",
            "--engine-dir",
            str(engine),
            "--tokenizer-dir",
            str(default_tokenizer_dir()),
            "--triton-backend",
            "python",
            "--tritonserver",
            binary,
            "--startup-timeout",
            "120",
            "--keep-logs",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env,
    )
    try:
        shown = read_until(process, "Press Ctrl-C to stop.")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "Triton is ready" in shown
    assert process.returncode == 0, stderr
    assert stdout.strip().endswith("stopped")
    (kept,) = [line for line in stderr.splitlines() if line.startswith("log kept: ")]
    log_path = Path(kept.removeprefix("log kept: "))
    assert "successfully loaded 'tensorrt_llm'" in log_path.read_text()
    shutil.rmtree(log_path.parent)
