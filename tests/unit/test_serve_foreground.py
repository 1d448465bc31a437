"""What ``trtclient serve`` prints once ready, and the hosts other machines can use.

The server is a tiny fake (a ready handle, then an exit code) and the machine's interfaces are patched, so
no socket is bound beyond loopback.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from trtclient.cli.foreground import serve_foreground
from trtclient.server.launcher import ServerHandle, local_host, reachable_hosts


def interfaces() -> dict[str, list[SimpleNamespace]]:
    return {
        "lo": [SimpleNamespace(family=socket.AF_INET, address="127.0.0.1")],
        "eth0": [
            SimpleNamespace(family=socket.AF_INET, address="192.0.2.10"),
            SimpleNamespace(family=socket.AF_INET6, address="2001:db8::10"),
            SimpleNamespace(family=socket.AF_INET6, address="fe80::1%eth0"),
        ],
    }


class DyingServer:
    """Ready at once on loopback ports, then exits with code 3 (so the foreground loop ends)."""

    def __init__(self, address: str, log_path: Path) -> None:
        self.address = address
        self.kept_log: Path | None = None
        self.log_path = log_path
        self.stopped = False

    def start(self) -> ServerHandle:
        return ServerHandle(
            url="http://127.0.0.1:8000",
            grpc_url="127.0.0.1:8001",
            metrics_url="http://127.0.0.1:8002/metrics",
            log_path=self.log_path,
            pid=1,
        )

    def exit_code(self) -> int | None:
        return 3

    def log_tail(self, lines: int = 40) -> str:
        return "last log line"

    def stop(self) -> None:
        self.stopped = True
        self.kept_log = self.log_path


def test_wildcard_addresses_list_every_interface_but_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "net_if_addrs", interfaces)
    assert reachable_hosts("0.0.0.0") == ["192.0.2.10"]
    assert reachable_hosts("::") == ["2001:db8::10"]
    assert reachable_hosts("192.0.2.10") == ["192.0.2.10"]
    assert reachable_hosts("127.0.0.1") == []
    assert local_host("0.0.0.0") == "127.0.0.1"
    assert local_host("::") == "::1"


def test_serving_on_all_interfaces_prints_urls_another_machine_can_use(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(psutil, "net_if_addrs", interfaces)
    server = DyingServer("0.0.0.0", tmp_path / "tritonserver.log")
    assert serve_foreground(server) == 1
    out, err = capsys.readouterr()
    assert "  HTTP     http://127.0.0.1:8000" in out
    assert "From other machines:" in out
    assert "HTTP http://192.0.2.10:8000  gRPC 192.0.2.10:8001  metrics http://192.0.2.10:8002/metrics" in out
    assert "0.0.0.0" not in out
    # the server died: the error points at its log, which stop() kept
    assert f"tritonserver exited with code 3 (log: {server.log_path})" in err
    assert f"log kept: {server.log_path}" in err
    assert server.stopped


def test_loopback_prints_no_other_machine_urls(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    serve_foreground(DyingServer("127.0.0.1", tmp_path / "tritonserver.log"))
    assert "From other machines" not in capsys.readouterr().out
