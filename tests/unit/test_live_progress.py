"""Live progress of sweeps and searches: what the line says, and how often it is written off a terminal."""

from __future__ import annotations

import io

from trtclient.bench.live import LiveProgress, Stage
from trtclient.bench.progress import Counters

S = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100 * S

    def __call__(self) -> int:
        return self.now


def counters(started: int, **values: int) -> Counters:
    c = Counters(started_ns=started)
    for name, value in values.items():
        setattr(c, name, value)
    return c


def test_the_line_says_stage_phase_time_rate_and_ttft() -> None:
    clock = Clock()
    live = LiveProgress(io.StringIO(), terminal=True, clock_ns=clock)
    live.begin(Stage("level 2 of 5 (c=4)", warmup_s=2.0, measure_s=10.0, remaining_after_s=36.0))
    c = counters(clock.now, sent=3)
    clock.now += 1 * S
    assert "level 2 of 5 (c=4): warm-up" in live.render(c, clock.now)
    c.output_tokens, c.ok = 400, 10
    c.recent_ttft_ns.extend([40_000_000, 50_000_000, 60_000_000])
    clock.now += 3 * S
    text = live.render(c, clock.now)
    assert text.startswith("level 2 of 5 (c=4): measuring")
    assert "elapsed 0:04" in text
    assert "~0:44 left" in text  # 8 s of this level + 36 s after it
    assert "133 tok/s" in text  # 400 tokens over the 3 s since the previous look (window: 5 s)
    assert "TTFT p50 50 ms" in text


def test_remaining_time_from_requests_when_there_is_no_duration() -> None:
    clock = Clock()
    live = LiveProgress(io.StringIO(), terminal=True, clock_ns=clock)
    live.begin(Stage("step 1 of at most 12 (2 req/s)", measure_requests=40))
    c = counters(clock.now, ok=10)
    clock.now += 5 * S
    assert "~0:15 left" in live.render(c, clock.now)  # 30 more requests at 2 per second


def test_a_terminal_gets_one_rewritten_line() -> None:
    clock, stream = Clock(), io.StringIO()
    live = LiveProgress(stream, terminal=True, clock_ns=clock)
    live.begin(Stage("level 1 of 2 (c=1)"))
    for _ in range(3):
        clock.now += S // 4
        live.update(counters(100 * S))
    text = stream.getvalue()
    assert text.count("\r") == 3 and "\n" not in text


def test_logs_get_a_plain_line_every_few_seconds() -> None:
    clock, stream = Clock(), io.StringIO()
    live = LiveProgress(stream, terminal=False, interval_s=5.0, clock_ns=clock)
    live.begin(Stage("level 1 of 2 (c=1)"))
    for _ in range(41):  # ten seconds of updates, four a second
        live.update(counters(100 * S))
        clock.now += S // 4
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in stream.getvalue()  # at 0 s, 5 s and 10 s
    live.note("c=1: 10 ok")
    assert stream.getvalue().endswith("c=1: 10 ok\n")
