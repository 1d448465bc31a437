"""Security defaults: secrets stay out of every output, TLS is verified unless the user opts out, and the
server binds loopback unless told otherwise (with a warning).

Secrets travel two ways: ``headers=`` on the clients, and credentials in the URL (which the HTTP
libraries turn into an ``Authorization: Basic`` header). The server is :mod:`faulty_triton`, over plain
HTTP or over TLS with a certificate made for the test by ``openssl``; it records the headers it receives,
which proves each secret was actually sent.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faulty_triton import FAULTS, FaultyTriton, fault_prompt  # noqa: E402

from trtclient import AsyncTritonClient, TritonClient
from trtclient.cli import build_parser, main
from trtclient.errors import (
    PortInUseError,
    RequestValidationError,
    TritonConnectionError,
    TritonError,
    error_kind,
)
from trtclient.options import Timeout
from trtclient.server.launcher import EmbeddedTriton

TOKEN = "tok-9f8e7d6c5b4a"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": TOKEN}
PASSWORD = "pa55-w0rd-7q"
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
FAILURES = [name for name, fault in FAULTS.items() if fault.kind is not None]


@pytest.fixture()
def server() -> Iterator[FaultyTriton]:
    with FaultyTriton(huge_bytes=1 << 16) as fake:
        yield fake


def with_password(url: str) -> str:
    return url.replace("://", f"://alice:{PASSWORD}@", 1)


def assert_no_secret(text: str) -> None:
    for secret in (TOKEN, PASSWORD, BASIC):
        assert secret not in text


# ---------------------------------------------------------------- secrets


async def test_async_client_keeps_header_secrets_out_of_errors_and_logs(
    server: FaultyTriton, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with AsyncTritonClient(server.url, headers=HEADERS, timeout=Timeout(read=0.3)) as client:
        seen.append(repr(client))
        for name in FAILURES:
            stream = client.generate_stream(fault_prompt(name), max_tokens=3)
            with pytest.raises(TritonError) as caught:
                async with stream:
                    async for _ in stream:
                        pass
            assert error_kind(caught.value) == FAULTS[name].kind
            seen += [str(caught.value), repr(caught.value), repr(caught.value.__cause__)]
            seen.append(str(stream.response_headers))
    seen += [record.getMessage() for record in caplog.records]
    assert_no_secret("\n".join(seen))
    assert [call.headers["authorization"] for call in server.requests] == [f"Bearer {TOKEN}"] * len(FAILURES)


def test_sync_client_keeps_url_credentials_out_of_errors_and_logs(
    server: FaultyTriton, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    headers = {"X-Api-Key": TOKEN}
    with TritonClient(with_password(server.url), headers=headers, timeout=Timeout(read=0.3)) as client:
        seen.append(repr(client))
        for name in FAILURES:
            stream = client.generate_stream(fault_prompt(name), max_tokens=3)
            with pytest.raises(TritonError) as caught, stream:
                for _ in stream:
                    pass
            assert error_kind(caught.value) == FAULTS[name].kind
            seen += [str(caught.value), repr(caught.value), repr(caught.value.__cause__)]
            seen.append(str(stream.response_headers))
    seen += [record.getMessage() for record in caplog.records]
    assert_no_secret("\n".join(seen))
    assert {call.headers["x-api-key"] for call in server.requests} == {TOKEN}
    assert {call.headers["authorization"] for call in server.requests} == {f"Basic {BASIC}"}


async def test_connection_failures_do_not_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FaultyTriton() as fake:
        closed = with_password(fake.url)
    async with AsyncTritonClient(closed, headers={"X-Api-Key": TOKEN}) as client:
        with pytest.raises(TritonConnectionError) as caught:
            await client.generate("hi", max_tokens=2)
    with (
        TritonClient(closed, headers={"X-Api-Key": TOKEN}) as sync_client,
        pytest.raises(TritonConnectionError) as sync_caught,
    ):
        sync_client.generate("hi", max_tokens=2)
    shown = [str(e) + repr(e) for e in (caught.value, sync_caught.value)]
    assert_no_secret("\n".join(shown + [r.getMessage() for r in caplog.records]))


async def test_url_credentials_and_an_authorization_header_together_are_a_validation_error() -> None:
    """Both clients refuse the ambiguous pair when they are built, before any connection (the HTTP
    libraries disagree on which one wins, or fail with their own exception)."""
    with pytest.raises(RequestValidationError, match="Authorization") as caught:
        AsyncTritonClient(with_password("http://127.0.0.1:8000"), headers=HEADERS)
    assert caught.value.field == "headers"
    with pytest.raises(RequestValidationError, match="Authorization"):
        TritonClient(with_password("http://127.0.0.1:8000"), headers=HEADERS)
    assert_no_secret(str(caught.value))


def test_bench_outputs_never_hold_url_credentials(server: FaultyTriton, tmp_path: Path) -> None:
    """Console report, JSON summary, CSV and JSONL records of a run whose URL carries a password."""
    dataset = tmp_path / "faults.jsonl"
    dataset.write_text("\n".join(json.dumps({"text_input": fault_prompt(n)}) for n in FAULTS) + "\n")
    out = {name: tmp_path / name for name in ("s.json", "r.csv", "r.jsonl")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trtclient.cli",
            "bench",
            "--url",
            with_password(server.url),
            "--metrics-url",
            with_password(server.url) + "/metrics",
            "--dataset",
            str(dataset),
            "--burst",
            str(len(FAULTS)),
            "--timeout",
            "0.3",
            "--json",
            str(out["s.json"]),
            "--csv",
            str(out["r.csv"]),
            "--records",
            str(out["r.jsonl"]),
            "--max-failures",
            "100%",  # the faults are the point here; the failure reasons are checked for secrets too
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert {call.headers.get("authorization") for call in server.requests} == {f"Basic {BASIC}"}
    assert_no_secret(result.stdout + result.stderr)
    for path in out.values():
        assert_no_secret(path.read_text())


def test_bench_errors_never_hold_url_credentials() -> None:
    with FaultyTriton() as fake:
        closed = with_password(fake.url)
    result = subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "bench", "--url", closed, "--no-server-metrics"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "cannot connect" in result.stderr
    assert_no_secret(result.stdout + result.stderr)


@pytest.mark.parametrize("stream", [[], ["--stream"]], ids=["generate", "generate --stream"])
def test_generate_command_never_prints_a_header_secret(
    server: FaultyTriton, stream: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``trtclient generate --header`` sends the secret; no outcome prints it (successes included)."""
    for name in FAULTS:
        argv = ["generate", fault_prompt(name), "--url", server.url, "--timeout", "0.3", "--max-tokens", "3"]
        code = main([*argv, "--header", f"Authorization: Bearer {TOKEN}", *stream])
        out, err = capsys.readouterr()
        assert_no_secret(out + err)
        assert "Traceback" not in err
        if code != 0:
            assert err.strip().splitlines()[-1].startswith("trtclient: error: ")
    assert {call.headers["authorization"] for call in server.requests} == {f"Bearer {TOKEN}"}
    assert len(server.requests) == len(FAULTS)


def test_a_malformed_header_flag_does_not_echo_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "hi", "--url", "http://127.0.0.1:9", "--header", f"Bearer {TOKEN}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--header expects 'NAME: VALUE'" in err
    assert_no_secret(err)


# ---------------------------------------------------------------- TLS


@pytest.fixture()
def tls_server(certificate: tuple[str, str]) -> Iterator[FaultyTriton]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with FaultyTriton(ssl_context=context) as fake:
        yield fake


async def test_https_is_verified_by_default(tls_server: FaultyTriton, certificate: tuple[str, str]) -> None:
    cert, _ = certificate
    async with AsyncTritonClient(tls_server.url) as client:
        with pytest.raises(TritonConnectionError, match="certificate verify failed") as caught:
            async with client.generate_stream("hi", max_tokens=2) as stream:
                async for _ in stream:
                    pass
        assert error_kind(caught.value) == "connect"
    with (
        TritonClient(tls_server.url) as sync_client,
        pytest.raises(TritonConnectionError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"),
    ):
        sync_client.generate("hi", max_tokens=2)
    assert tls_server.requests == []

    async with AsyncTritonClient(tls_server.url, verify=cert) as trusted:
        stream = trusted.generate_stream("hi", max_tokens=2)
        async with stream:
            assert [chunk.text async for chunk in stream] == [" w0", " w1"]
    with TritonClient(tls_server.url, verify=False) as opted_out:
        assert opted_out.generate("hi", max_tokens=2).text_output == " w0 w1"
    assert len(tls_server.requests) == 2


def test_bench_refuses_an_unverified_https_server_in_one_line(tls_server: FaultyTriton) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trtclient.cli", "bench", "--url", tls_server.url, "--no-server-metrics"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "certificate verify failed" in result.stderr
    assert tls_server.requests == []


# ---------------------------------------------------------------- where servers listen


def test_servers_bind_loopback_by_default() -> None:
    assert build_parser().parse_args(["serve"]).address == "127.0.0.1"
    assert EmbeddedTriton().address == "127.0.0.1"


def test_serve_warns_before_binding_beyond_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    """The warning comes first; here the start then fails on an unknown profile, so nothing binds."""
    code = main(["serve", "--address", "0.0.0.0", "--profile", "nope"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err[0].startswith("warning: binding to 0.0.0.0 exposes the server")
    assert sum("warning:" in line for line in err) == 1  # once, not from both the command and the launcher
    assert err[1].startswith("trtclient: error: unknown profile 'nope'")


def test_launcher_logs_a_warning_before_binding_beyond_loopback(caplog: pytest.LogCaptureFixture) -> None:
    """A port taken on loopback stops the start before anything listens on 0.0.0.0."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError):
            EmbeddedTriton(address="0.0.0.0", http_port=port).start()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["binding to 0.0.0.0 exposes the server beyond this machine; the default is 127.0.0.1"]
