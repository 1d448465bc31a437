"""trtclient bench and Locust against a Triton whose inference API needs a key (``--http-restricted-api``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trtclient import exit_codes
from trtclient.loadtest.records import read_records
from trtclient.server.launcher import EmbeddedTriton, ServerHandle

pytestmark = pytest.mark.integration

SECRET = "s3cret-value-42"


@pytest.fixture(scope="module")
def locked_server() -> Iterator[ServerHandle]:
    with EmbeddedTriton(extra_args=[f"--http-restricted-api=inference:infer-key={SECRET}"]) as server:
        yield server.handle


def bench(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["--url", url, "--burst", "3", "--max-tokens", "4", "--no-progress"]
    args += ["--json", str(tmp_path / "run.json"), "--records", str(tmp_path / "records.jsonl")]
    return subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "bench", *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_the_key_every_request_fails_by_kind(locked_server: ServerHandle, tmp_path: Path) -> None:
    result = bench(locked_server.url, tmp_path)
    records = list(read_records(tmp_path / "records.jsonl"))
    assert [r.status for r in records] == ["failed"] * 3
    assert {r.error_kind for r in records} <= {"http_401", "http_403"}
    assert result.returncode == exit_codes.FAILURES  # every request failed


def test_with_the_key_it_succeeds_and_the_secret_stays_out(
    locked_server: ServerHandle, tmp_path: Path
) -> None:
    result = bench(locked_server.url, tmp_path, "--header", f"infer-key:{SECRET}")
    assert result.returncode == 0, result.stderr
    records = list(read_records(tmp_path / "records.jsonl"))
    assert [r.status for r in records] == ["ok"] * 3
    summary = (tmp_path / "run.json").read_text()
    assert '"infer-key"' in summary
    for text in (summary, (tmp_path / "records.jsonl").read_text(), result.stdout, result.stderr):
        assert SECRET not in text


def test_a_header_without_a_colon_is_one_clear_error(tmp_path: Path) -> None:
    result = bench("http://127.0.0.1:9", tmp_path, "--header", f"infer-key={SECRET}")
    assert result.returncode == 2
    assert "--header takes NAME:VALUE" in result.stderr
    assert SECRET not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.locust
def test_locust_sends_the_key_and_never_shows_it(locked_server: ServerHandle, tmp_path: Path) -> None:
    records = tmp_path / "locust.jsonl"
    locustfile = Path(__file__).resolve().parents[2] / "locustfiles" / "burst.py"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        locked_server.url,
    ]
    command += ["--burst-size", "3", "--max-tokens", "4", "--records", str(records), "--only-summary"]
    command += ["--header", f"infer-key:{SECRET}", "--csv", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [r.status for r in read_records(records)] == ["ok"] * 3
    for text in (
        result.stdout,
        result.stderr,
        records.read_text(),
        *(p.read_text() for p in tmp_path.glob("out*")),
    ):
        assert SECRET not in text
