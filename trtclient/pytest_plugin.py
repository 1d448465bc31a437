"""pytest plugin: a real Triton server for integration tests.

Registered through the ``pytest11`` entry point, so any project with trtclient installed gets:

* ``triton_server`` — a session fixture: the embedded Triton (CPU engine, ``--triton-profile``, default
  ``instant``) started once per session and stopped at the end, or the server given by ``--triton-url``
  (and ``--triton-grpc-url`` / ``--triton-metrics-url``) when you already run one. It yields a
  :class:`~trtclient.server.launcher.ServerHandle` (``url``, ``grpc_url``, ``metrics_url``, ``log_path``).
* ``--triton-template-dir DIR`` (and ``--triton-requirements FILE``): the embedded server serves your own
  model repository (TensorRT-LLM's ``inflight_batcher_llm`` layout) with the CPU engine standing in for its
  ``tensorrt_llm`` model, as ``trtclient serve --template-dir`` does.
* the lines the server logged during a failing test that used the fixture, attached to its report
  (the last 40 of them).
* a ``--triton-url`` where no Triton answers ends the session at set-up, with one message.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from trtclient.server.launcher import ServerHandle

__all__ = ["triton_server"]

_HANDLE_KEY = pytest.StashKey["ServerHandle"]()
_LOG_OFFSET_KEY = pytest.StashKey[int]()
#: Lines of the server log attached to a failing test's report, at most.
LOG_LINES = 40


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("trtclient", "Triton server for integration tests")
    group.addoption(
        "--triton-url",
        default=os.environ.get("TRITON_URL"),
        help="use this running Triton (e.g. http://127.0.0.1:8000) instead of starting the embedded one",
    )
    group.addoption("--triton-grpc-url", default=os.environ.get("TRITON_GRPC_URL"), help="its gRPC host:port")
    group.addoption(
        "--triton-metrics-url", default=os.environ.get("TRITON_METRICS_URL"), help="its /metrics URL"
    )
    group.addoption(
        "--triton-profile",
        default="instant",
        help="timing profile of the embedded server (default: instant)",
    )
    group.addoption(
        "--triton-template-dir",
        default=None,
        help="serve this model repository (inflight_batcher_llm layout) with the CPU engine as tensorrt_llm",
    )
    group.addoption(
        "--triton-requirements",
        default=None,
        help="pip requirements of the template dir's python models (e.g. transformers)",
    )


@pytest.fixture(scope="session")
def triton_server(request: pytest.FixtureRequest) -> Generator[ServerHandle, None, None]:
    """A running Triton serving the TRT-LLM ensemble: the embedded one, or ``--triton-url``."""
    from trtclient.server.launcher import EmbeddedTriton, ServerHandle

    config = request.config
    url = config.getoption("--triton-url")
    if url:
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 8000
        handle = ServerHandle(
            url=url.rstrip("/"),
            grpc_url=config.getoption("--triton-grpc-url") or f"{host}:{port + 1}",
            metrics_url=config.getoption("--triton-metrics-url") or f"http://{host}:{port + 2}/metrics",
            log_path=Path(os.devnull),
            pid=0,
        )
        _check_reachable(handle.url)
        config.stash[_HANDLE_KEY] = handle
        yield handle
        return
    template_dir = config.getoption("--triton-template-dir")
    requirements = config.getoption("--triton-requirements")
    server = EmbeddedTriton(
        profile=config.getoption("--triton-profile"),
        template_dir=Path(template_dir) if template_dir else None,
        requirements=Path(requirements) if requirements else None,
        startup_timeout=180.0 if template_dir else 60.0,
    )
    server.start()
    config.stash[_HANDLE_KEY] = server.handle
    try:
        yield server.handle
    finally:
        server.stop()


def _check_reachable(url: str) -> None:
    """End the session with one message when nothing answers Triton's readiness call at ``url``."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v2/health/ready", timeout=5):
            return
    except urllib.error.HTTPError:
        return  # a server answered (not ready yet, or restricted): the tests will say more
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
    pytest.exit(
        f"--triton-url {url}: no Triton answers there ({reason}); start one (trtclient serve) "
        "or leave --triton-url out to use the embedded server",
        returncode=pytest.ExitCode.USAGE_ERROR,
    )


def _log_size(item: pytest.Item) -> int | None:
    handle = item.config.stash.get(_HANDLE_KEY, None)
    if handle is None or handle.log_path == Path(os.devnull):
        return None
    try:
        return handle.log_path.stat().st_size
    except OSError:
        return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    # After the fixtures are set up (the session's server may start here): where this test's lines begin.
    try:
        return (yield)
    finally:
        size = _log_size(item)
        if size is not None:
            item.stash[_LOG_OFFSET_KEY] = size


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and "triton_server" in getattr(item, "fixturenames", ()):
        handle = item.config.stash.get(_HANDLE_KEY, None)
        if handle is not None and handle.log_path != Path(os.devnull):
            offset = item.stash.get(_LOG_OFFSET_KEY, 0)
            try:
                with handle.log_path.open("rb") as log:
                    log.seek(offset)
                    lines = log.read().decode(errors="replace").splitlines()[-LOG_LINES:]
            except OSError:
                lines = ["(server log unavailable)"]
            text = "\n".join(lines) or "(the server logged nothing during this test)"
            report.sections.append((f"triton server log during this test (last {LOG_LINES} lines)", text))
    return report
