"""Launcher faults that need no server: restarting on the ports of a crashed one, a missing binary."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest

from trtclient.errors import PortInUseError, SetupError
from trtclient.server.launcher import TritonProcess, ensure_port_free


def leave_time_wait_on_a_port() -> int:
    """A loopback port whose only trace is a connection in TIME_WAIT, as a crashed server leaves it.

    Like tritonserver, the listener sets SO_REUSEADDR, which its connections (and their TIME_WAIT) inherit.
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first, so TIME_WAIT is on the server's port
        client.recv(1)
        client.close()
    return port


def test_a_port_left_in_time_wait_is_free_for_a_restart() -> None:
    port = leave_time_wait_on_a_port()
    states = {c.status for c in psutil.net_connections(kind="tcp4") if c.laddr and c.laddr.port == port}
    assert states == {psutil.CONN_TIME_WAIT}
    ensure_port_free(port)


def test_a_listening_port_is_still_taken() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            ensure_port_free(port)


def test_a_missing_server_binary_is_a_setup_error(tmp_path: Path) -> None:
    missing = tmp_path / "bin" / "tritonserver"
    process = TritonProcess([str(missing)], http_url="http://127.0.0.1:1", log_path=tmp_path / "log")
    with pytest.raises(SetupError, match=f"{missing} not found or not executable"):
        process.start()
    assert process.process is None
