"""A locustfile whose one user keeps the CPU busy in Python and yields to gevent every few
milliseconds, with the Locust kit's (``locustfiles/trtlocust``) process hooks loaded. A SIGINT then
nearly always arrives while the user's greenlet runs, which a real load test only does by chance.

It writes the path in ``BUSY_MARKER`` once the user is spinning. With ``BUSY_HOLD_STOP`` set, the
user's ``on_stop`` writes ``<BUSY_MARKER>.stopping`` and then never returns, so a test can press
Ctrl-C again while Locust is shutting down.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "locustfiles"))

import gevent  # noqa: E402
from locust import User, task  # noqa: E402
from trtlocust import TritonUser  # noqa: E402, F401  (loads the kit, which registers its process hooks)


class BusyUser(User):
    @task
    def spin(self) -> None:
        Path(os.environ["BUSY_MARKER"]).touch()
        while True:
            deadline = time.perf_counter() + 0.01
            while time.perf_counter() < deadline:
                pass
            gevent.sleep(0)

    def on_stop(self) -> None:
        if os.environ.get("BUSY_HOLD_STOP"):
            Path(os.environ["BUSY_MARKER"] + ".stopping").touch()
            while True:
                gevent.sleep(0.05)
