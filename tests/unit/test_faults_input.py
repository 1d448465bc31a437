"""Bad input wherever a user types: one readable message naming the mistake, a non-zero exit, no traceback
(unless ``--debug``), and nothing sent to the server.

Command lines run in-process through ``trtclient.cli.main`` (the console script's entry point); one test
runs the real process to check exit codes and output end to end. ``--url`` points at a closed port where
the mistake must be caught before any connection, and at :mod:`faulty_triton` where the server's answer
is part of the case.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faulty_triton import FaultyTriton  # noqa: E402

from trtclient import AsyncTritonClient, TritonClient
from trtclient.cli import main
from trtclient.errors import RequestValidationError, SetupError, UnsupportedInputError
from trtclient.inputs import make_request
from trtclient.loadtest.schedule import Burst, Concurrency, Rate, Stop
from trtclient.options import Timeout
from trtclient.server.launcher import EmbeddedTriton, free_port


@pytest.fixture(scope="module")
def closed_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture()
def server() -> Iterator[FaultyTriton]:
    with FaultyTriton() as fake:
        yield fake


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("trtclient: error: ")
    for needle in needles:
        assert needle in lines[0]


FLAG_MISTAKES = [
    (["--rate", "-1"], "--rate must be positive"),
    (["--rate", "0"], "--rate must be positive"),
    (["--rate", "nan"], "--rate must be positive"),
    (["--concurrency", "0"], "--concurrency must be positive"),
    (["--burst", "-3"], "--burst must be positive"),
    (["--max-tokens", "0"], "--max-tokens must be positive"),
    (["--requests", "0"], "--requests must be positive"),
    (["--duration", "0"], "--duration must be positive"),
    (["--duration", "5 parsecs"], "--duration expects a duration"),
    (["--timeout", "0"], "--timeout must be positive"),
    (["--rate", "2", "--max-concurrency", "0"], "--max-concurrency must be positive"),
    (["--every", "0"], "--every must be positive"),
    (["--concurrency", "2", "--every", "1s"], "--every repeats a burst"),
    (["--warmup", "soon"], "--warmup expects a duration"),
    (["--slo", "ttft=fast"], "--slo ttft needs a number of milliseconds"),
    (["--slo", "latency=5"], "--slo expects METRIC=MS"),
    (["--param", "temperature"], "--param expects NAME=VALUE"),
    (["--input-tokens", "128"], "need both --input-tokens and --output-tokens"),
    (["--tokenizer", "/nonexistent"], "no tokenizer.json in /nonexistent"),
    (["--prompt", ""], "prompt is empty"),
]


@pytest.mark.parametrize(("flags", "message"), FLAG_MISTAKES, ids=[" ".join(f) for f, _ in FLAG_MISTAKES])
def test_bench_flag_mistakes_are_one_line(
    flags: list[str], message: str, closed_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["bench", "--url", closed_url, *flags], capsys)
    assert_one_line(code, err, message)
    assert code == 2


URL_MISTAKES = [
    ("ftp://127.0.0.1:8000", "unsupported URL scheme 'ftp'"),
    ("http://127.0.0.1:99999", "invalid port in the server URL"),
    ("http://", "no host in the server URL"),
    ("http://[::1", "'http://[::1'"),
]


@pytest.mark.parametrize(("url", "message"), URL_MISTAKES, ids=[u for u, _ in URL_MISTAKES])
def test_bad_urls_are_one_line(url: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["bench", "--url", url], capsys)
    assert_one_line(code, err, message)


def test_unreadable_and_malformed_datasets_are_rejected_naming_file_and_line(
    tmp_path: Path, closed_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Datasets are checked whole before any request: a malformed line rejects the file (it is not
    skipped), and the message names the file and the line."""
    cases: list[tuple[Path, str]] = []
    missing = tmp_path / "missing.jsonl"
    cases.append((missing, f"{missing}: no such file"))
    cases.append((tmp_path, "cannot read it"))
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    cases.append((binary, "cannot read it"))
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text('{"text_input": "fine"}\n{"text_input": "cut off\n')
    cases.append((malformed, f"{malformed}:2: not JSON"))
    no_text = tmp_path / "no_text.jsonl"
    no_text.write_text('{"text_input": "fine"}\n{"question": "where is the prompt?"}\n')
    cases.append((no_text, f"{no_text}:2: needs a non-empty string"))
    zero = tmp_path / "zero.jsonl"
    zero.write_text('{"text_input": "fine", "max_tokens": 0}\n')
    cases.append((zero, f"{zero}:1: max_tokens must be a positive integer"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    cases.append((empty, "holds no prompts"))
    not_sharegpt = tmp_path / "chat.json"
    not_sharegpt.write_text('{"conversations": []}')
    cases.append((not_sharegpt, "expected a JSON list of conversations"))
    for path, message in cases:
        fmt = ["--dataset-format", "jsonl"] if path == tmp_path else []
        code, err = run_cli(["bench", "--url", closed_url, "--dataset", str(path), *fmt], capsys)
        assert_one_line(code, err, message)


def test_argparse_type_errors_name_the_flag(closed_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--url", closed_url, "--rate", "fast"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (
        err.strip().splitlines()[-1]
        == "trtclient bench: error: argument --rate/--request-rate: invalid float value: 'fast'"
    )


def test_debug_shows_the_traceback(closed_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["--debug", "bench", "--url", closed_url, "--rate", "-1"], capsys)
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1] == "trtclient: error: --rate must be positive, got -1.0"


def test_the_real_command_exits_nonzero_with_one_line(closed_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "bench", "--url", closed_url, "--max-tokens", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "trtclient: error: --max-tokens must be positive, got 0\n"


# ---------------------------------------------------------------- mistakes the server reveals


def test_unknown_model_and_unknown_input_are_one_line_and_send_nothing(
    server: FaultyTriton, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["bench", "--url", server.url, "--metrics-url", server.url + "/metrics", "--no-progress"]
    code, err = run_cli([*base, "--model", "llama"], capsys)
    assert_one_line(code, err, "'llama'", "not found")
    code, err = run_cli([*base, "--param", "min_lenght=3"], capsys)
    assert_one_line(code, err, "no input 'min_lenght'", "min_tokens")
    code, err = run_cli([*base, "--param", 'temperature="hot"'], capsys)
    assert_one_line(code, err, "temperature")
    assert server.requests == []


def test_bench_sets_max_tokens_itself_so_a_param_for_it_is_refused(
    server: FaultyTriton, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["bench", "--url", server.url, "--metrics-url", server.url + "/metrics", "--no-progress"]
    code, err = run_cli([*base, "--param", "max_tokens=5"], capsys)
    assert_one_line(code, err, "--max-tokens")
    assert server.requests == []


@pytest.mark.parametrize("flag", ["--records", "--json", "--csv"])
def test_unwritable_outputs_are_refused_before_the_run(
    flag: str, server: FaultyTriton, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding out after a long run that its results cannot be written loses the run."""
    target = tmp_path / "no" / "such" / "dir" / "out"
    base = ["bench", "--url", server.url, "--metrics-url", server.url + "/metrics", "--no-progress"]
    code, err = run_cli([*base, flag, str(target)], capsys)
    assert_one_line(code, err, flag, str(target.parent))
    assert server.requests == []


GENERATE_MISTAKES = [
    (["--max-tokens", "0"], "max_tokens"),
    (["--temperature", "-1"], "temperature"),
    (["--top-p", "2"], "top_p"),
    (["--input", "x"], "--input expects NAME=VALUE"),
    (["--input", "min_lenght=3"], "no input 'min_lenght'"),
    (["--timeout", "0"], "--timeout must be > 0"),
    (["--retries", "-1"], "--retries must be >= 0"),
    (["--cacert", "/nonexistent/ca.pem"], "cannot load the CA bundle"),
    (["--model", "llama"], "'llama' is not found"),
]


@pytest.mark.parametrize(
    ("flags", "message"), GENERATE_MISTAKES, ids=[" ".join(f) for f, _ in GENERATE_MISTAKES]
)
def test_generate_flag_mistakes_are_one_line_and_send_nothing(
    flags: list[str], message: str, server: FaultyTriton, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["generate", "What is machine learning?", "--url", server.url, *flags], capsys)
    assert_one_line(code, err, message)
    assert server.requests == []


# ---------------------------------------------------------------- the Python API


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": "20"}, "max_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 2.0}, "top_p"),
        ({"seed": -1}, "seed"),
        ({"stop_words": 5}, "stop_words"),
        ({"min_tokens": -1}, "min_tokens"),
    ],
)
def test_request_validation_names_the_field(inputs: dict[str, object], field: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        make_request("What is machine learning?", inputs)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_async_client_refuses_bad_inputs_before_sending(server: FaultyTriton) -> None:
    async with AsyncTritonClient(server.url) as client:
        with pytest.raises(RequestValidationError) as caught:
            client.generate_stream("hi", max_tokens=0)
        assert caught.value.field == "max_tokens"
        with pytest.raises(UnsupportedInputError) as unsupported:
            async with client.generate_stream("hi", min_lenght=3) as stream:
                async for _ in stream:
                    pass
        assert unsupported.value.field == "min_lenght"
        assert "Did you mean 'min_tokens'?" in str(unsupported.value)
    assert server.requests == []


def test_sync_client_refuses_bad_inputs_before_sending(server: FaultyTriton) -> None:
    with TritonClient(server.url) as client:
        with pytest.raises(RequestValidationError) as caught:
            client.generate("hi", top_p=2.0)
        assert caught.value.field == "top_p"
        with pytest.raises(UnsupportedInputError) as unsupported:
            client.generate("hi", random_sed=1)
        assert unsupported.value.field == "random_sed"
    assert server.requests == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AsyncTritonClient("ftp://127.0.0.1:8000"), "unsupported URL scheme 'ftp'"),
        (lambda: TritonClient("http://127.0.0.1:8000", connections=0), "connections must be an int >= 1"),
        (lambda: TritonClient("http://127.0.0.1:8000", max_retries=-1), "max_retries"),
        (lambda: TritonClient("http://127.0.0.1:8000", model=""), "model name is empty"),
        (lambda: Timeout(read=0), "timeout read must be > 0"),
    ],
)
def test_client_construction_mistakes_say_what_is_wrong(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(RequestValidationError, match=message):
        make()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Rate(0), "request rate must be a positive number"),
        (lambda: Rate(2, max_concurrency=0), "concurrency ceiling must be at least 1"),
        (lambda: Concurrency(0), "concurrency must be at least 1"),
        (lambda: Burst(0), "burst needs at least one request"),
        (lambda: Stop(requests=0), "request count must be at least 1"),
        (lambda: Stop(), "needs a request count or a duration"),
    ],
)
def test_load_shape_mistakes_say_what_is_wrong(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=message):
        make()


def test_launcher_batch_size_mistake_names_the_field() -> None:
    with pytest.raises(SetupError, match="max_batch_size must be at least 1, got 0"):
        EmbeddedTriton(max_batch_size=0).start()
