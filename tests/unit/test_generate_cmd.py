"""``trtclient generate`` against the loopback fake of Triton."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from triton_fake import FakeTriton, sse

from trtclient.cli import main

STREAM = "/v2/models/ensemble/generate_stream"
GENERATE = "/v2/models/ensemble/generate"


@pytest.fixture
def fake() -> Generator[FakeTriton, None, None]:
    server = FakeTriton()
    yield server
    server.close()


def test_prints_the_answer_and_sends_the_inputs(fake: FakeTriton, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on(
        "POST", GENERATE, lambda x: x.json(200, {"model_name": "ensemble", "text_output": "ML is a field"})
    )
    flags = ["--max-tokens", "5", "--seed", "3", "--stop-word", "end", "--input", "temperature=0.5"]
    code = main(["generate", "What is ML?", "--url", fake.url, *flags, "--header", "X-Key: s3cret"])
    assert code == 0
    assert capsys.readouterr().out == "ML is a field\n"
    sent = [r for r in fake.requests if r.path == GENERATE][0]
    assert sent.json() == {
        "text_input": "What is ML?",
        "max_tokens": 5,
        "seed": 3,
        "stop_words": ["end"],
        "temperature": 0.5,
    }
    assert sent.headers["x-key"] == "s3cret"


def test_streams_tokens_as_they_arrive(fake: FakeTriton, capsys: pytest.CaptureFixture[str]) -> None:
    events = sse(*({"text_output": t} for t in [" Machine", " learning"]))
    fake.on("POST", STREAM, lambda x: x.stream(events))
    assert main(["generate", "What is ML?", "--url", fake.url, "--stream", "--timing"]) == 0
    captured = capsys.readouterr()
    assert captured.out == " Machine learning\n"
    assert captured.err.startswith("2 events, first token ")


def test_json_output_prints_one_line_per_event(fake: FakeTriton, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("POST", STREAM, lambda x: x.stream(sse({"text_output": "a"}, {"text_output": "b"})))
    assert main(["generate", "hi", "--url", fake.url, "--stream", "--json"]) == 0
    assert capsys.readouterr().out.splitlines() == ['{"text_output": "a"}', '{"text_output": "b"}']


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["generate", "hi"], 2, "no server given"),
        (["generate", "hi", "--input", "novalue"], 2, "NAME=VALUE"),
        (["generate", "hi", "--header", "no-separator"], 2, "NAME: VALUE"),
        (["generate", "hi", "--timeout", "0"], 2, "--timeout"),
        (["generate", "hi", "--max-tokens", "0"], 1, "max_tokens"),
        (["generate", "hi", "--input", "max_token=3"], 1, "Did you mean 'max_tokens'"),
    ],
)
def test_mistakes_are_one_line(
    fake: FakeTriton, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str],
    code: int, message: str,
) -> None:  # fmt: skip
    monkeypatch.delenv("TRITON_URL", raising=False)
    full = argv if argv == ["generate", "hi"] else [*argv, "--url", fake.url]
    assert main(full) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("trtclient: error: ")
    assert message in err
    assert "Traceback" not in err


def test_error_event_inside_a_200_stream_fails(fake: FakeTriton, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("POST", STREAM, lambda x: x.stream(sse({"text_output": "a"}, {"error": "Executor failed"})))
    assert main(["generate", "hi", "--url", fake.url, "--stream"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "a\n"  # the partial text ends its line, so the error gets one of its own
    assert "Executor failed" in captured.err
