"""Run a server in the foreground until Ctrl-C or SIGTERM — also while it is still starting."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Protocol

from trtclient.server.process import ServerHandle, is_wildcard, reachable_hosts

__all__ = ["ForegroundServer", "serve_foreground"]


class ForegroundServer(Protocol):
    """What :func:`serve_foreground` needs of a launcher (``EmbeddedTriton``, ``GpuTriton``)."""

    @property
    def address(self) -> str: ...

    @property
    def kept_log(self) -> Path | None: ...

    def start(self) -> ServerHandle: ...

    def stop(self) -> None: ...

    def exit_code(self) -> int | None: ...

    def log_tail(self, lines: int = 40) -> str: ...


def serve_foreground(server: ForegroundServer) -> int:
    """Start ``server``, print where it answers, serve until Ctrl-C / SIGTERM or its death; always stop it.

    SIGTERM while the server starts interrupts the start (like Ctrl-C), so nothing waits out the start-up
    timeout; once ready, it ends the wait below and the server stops cleanly.
    """
    ready = threading.Event()
    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if not ready.is_set():
            raise KeyboardInterrupt  # unwinds start(), which stops what it launched
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    started = time.monotonic()
    code = 0
    try:
        handle = server.start()
        ready.set()
        _print_ready(server, handle, time.monotonic() - started)
        while not stop.wait(0.5):
            exit_code = server.exit_code()
            if exit_code is not None:
                print(
                    f"trtclient: error: tritonserver exited with code {exit_code} (log: {handle.log_path})\n"
                    f"{server.log_tail()}",
                    file=sys.stderr,
                )
                code = 1
                break
    except KeyboardInterrupt:
        if not ready.is_set():
            raise  # interrupted while starting: start() already stopped what it launched
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        if server.kept_log is not None:
            print(f"log kept: {server.kept_log}", file=sys.stderr, flush=True)
    if code == 0:
        print("stopped", flush=True)
    return code


def _print_ready(server: ForegroundServer, handle: ServerHandle, seconds: float) -> None:
    print(f"Triton is ready ({seconds:.1f} s)", flush=True)
    print(f"  HTTP     {handle.url}", flush=True)
    print(f"  gRPC     {handle.grpc_url}", flush=True)
    print(f"  metrics  {handle.metrics_url}", flush=True)
    print(f"  log      {handle.log_path}", flush=True)
    hosts = reachable_hosts(server.address)
    if hosts:
        port = handle.url.rsplit(":", 1)[1]
        grpc_port = handle.grpc_url.rsplit(":", 1)[1]
        metrics_port = handle.metrics_url.rsplit(":", 1)[1].split("/")[0]
        print("From other machines:", flush=True)
        for host in hosts:
            shown = f"[{host}]" if ":" in host else host
            print(
                f"  HTTP http://{shown}:{port}  gRPC {shown}:{grpc_port}  metrics "
                f"http://{shown}:{metrics_port}/metrics",
                flush=True,
            )
    elif is_wildcard(server.address):
        print("From other machines: this machine's address (no non-loopback interface found)", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
