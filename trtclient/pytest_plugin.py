"""pytest plugin: a real Triton server for integration tests.

Registered through the ``pytest11`` entry point, so any project with trtclient installed gets:

* ``triton_server`` — a session fixture: the embedded Triton (CPU engine, ``--triton-profile``, default
  ``instant``) started once per session and stopped at the end, or the server given by ``--triton-url``
  (and ``--triton-grpc-url`` / ``--triton-metrics-url``) when you already run one. It yields a
  :class:`~trtclient.server.launcher.ServerHandle` (``url``, ``grpc_url``, ``metrics_url``, ``log_path``).
* ``--triton-template-dir DIR`` (and ``--triton-requirements FILE``): the embedded server serves your own
  model repository (TensorRT-LLM's ``inflight_batcher_llm`` layout) with the CPU engine standing in for its
  ``tensorrt_llm`` model, as ``trtclient serve --template-dir`` does.
* the server log's last lines attached to the report of every failing test that used the fixture.
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed and "triton_server" in getattr(item, "fixturenames", ()):
        handle = item.config.stash.get(_HANDLE_KEY, None)
        if handle is not None and handle.log_path != Path(os.devnull):
            try:
                lines = handle.log_path.read_text(errors="replace").splitlines()[-40:]
            except OSError:
                lines = ["(server log unavailable)"]
            report.sections.append(("triton server log (last 40 lines)", "\n".join(lines)))
    return report
