"""``trtclient serve`` takes Triton's own ports where they are free and says which it could not take."""

from __future__ import annotations

import socket

import pytest

from trtclient import constants
from trtclient.cli import build_parser
from trtclient.cli.serve_cmd import triton_default_ports
from trtclient.server.process import free_port


def test_free_defaults_are_taken_and_a_busy_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        http, grpc = free_port(), free_port()
        monkeypatch.setattr(constants, "DEFAULT_HTTP_PORT", http)
        monkeypatch.setattr(constants, "DEFAULT_GRPC_PORT", grpc)
        monkeypatch.setattr(constants, "DEFAULT_METRICS_PORT", taken)
        args = build_parser().parse_args(["serve"])
        notes = triton_default_ports(args)
    assert (args.http_port, args.grpc_port, args.metrics_port) == (http, grpc, None)
    assert notes == [
        f"port {taken} is taken: --metrics-port is a free port instead (see the addresses below)"
    ]


def test_ports_given_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(
        ["serve", "--http-port", "9100", "--grpc-port", "9101", "--metrics-port", "9102"]
    )
    assert triton_default_ports(args) == []
    assert (args.http_port, args.grpc_port, args.metrics_port) == (9100, 9101, 9102)
