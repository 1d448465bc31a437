"""How a gRPC stream that breaks is classified: a drop after the call started is a disconnect.

The errors are stand-ins carrying the status codes and details gRPC's core produced when the embedded
Triton was killed under load (seen in ``test_faults_embedded.py``); a unit test cannot make the core
produce them on demand.
"""

from __future__ import annotations

import grpc  # type: ignore[import-untyped]
import pytest

from trtclient.errors import error_kind
from trtclient.transports.grpc_codec import map_rpc_error


class BrokenCall(grpc.RpcError):  # type: ignore[misc]
    """A stand-in for a failed gRPC call: its status code and details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


DROPPED = [
    (grpc.StatusCode.UNAVAILABLE, "Socket closed"),
    (grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)"),
    (grpc.StatusCode.UNAVAILABLE, "Stream removed (recvmsg:Connection reset by peer (104))"),
    (grpc.StatusCode.INTERNAL, "Internal error from Core"),
]
NOT_CONNECTED = (
    grpc.StatusCode.UNAVAILABLE,
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:8001: "
    "Failed to connect to remote host: Connection refused",
)


@pytest.mark.parametrize(("code", "details"), DROPPED, ids=[d for _, d in DROPPED])
def test_a_stream_that_breaks_after_it_started_is_a_disconnect(code: grpc.StatusCode, details: str) -> None:
    assert (
        error_kind(map_rpc_error(BrokenCall(code, details), "127.0.0.1:8001", in_stream=True)) == "disconnect"
    )


def test_a_refused_connection_stays_a_connect_failure_even_for_a_stream() -> None:
    error = map_rpc_error(BrokenCall(*NOT_CONNECTED), "127.0.0.1:8001", in_stream=True)
    assert error_kind(error) == "connect"


def test_tritons_own_internal_errors_stay_status_errors_in_a_stream() -> None:
    error = map_rpc_error(
        BrokenCall(grpc.StatusCode.INTERNAL, "in ensemble 'ensemble', Failed to process the request(s)"),
        "127.0.0.1:8001",
        in_stream=True,
    )
    assert error_kind(error) == "grpc_internal"
