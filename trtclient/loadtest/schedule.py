"""Load shapes: when each request of a run should start, and which phase it belongs to.

Four shapes, all pure (no clock, no I/O); times are nanosecond offsets from the run's start:

- :class:`Burst`: ``size`` requests at once, optionally repeated every ``every_s`` seconds.
- :class:`Concurrency` (closed loop): ``concurrency`` workers, each sending its next request as soon as
  the previous one ends; a ramp-up staggers the workers' first requests evenly over ``ramp_up_s``.
- :class:`Rate` (open loop): arrivals at ``rate`` per second regardless of the server, with constant,
  Poisson (exponential gaps) or gamma gaps. ``burstiness`` is the gamma shape factor: 1 is Poisson,
  below 1 burstier, above 1 more even (the convention of vLLM's ``--burstiness``). A ramp-up raises
  the rate linearly from 0 to ``rate`` over ``ramp_up_s``. ``max_concurrency`` caps requests in
  flight; arrivals over the cap wait, and their latency from the intended start shows it.
- :class:`Replay` (open loop): the arrival times of a recorded trace (:mod:`~trtclient.loadtest.trace`).

:class:`Phases` sorts requests, in start order, into warm-up, measured, or past the stop condition.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Arrival",
    "Burst",
    "Concurrency",
    "LoadShape",
    "Phase",
    "Phases",
    "Rate",
    "Replay",
    "Stop",
    "Warmup",
    "arrival_offsets",
    "worker_start_offsets",
]

NS_PER_S = 1_000_000_000

Arrival = Literal["constant", "poisson", "gamma"]
Phase = Literal["warmup", "measure", "stop"]


@dataclass(frozen=True)
class Burst:
    """``size`` requests at once; again every ``every_s`` seconds when given."""

    size: int
    every_s: float | None = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("a burst needs at least one request")
        if self.every_s is not None and self.every_s <= 0:
            raise ValueError("the burst period must be positive")


@dataclass(frozen=True)
class Concurrency:
    """Closed loop: ``concurrency`` requests in flight at all times."""

    concurrency: int

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


@dataclass(frozen=True)
class Rate:
    """Open loop: ``rate`` arrivals per second, whatever the server does."""

    rate: float
    arrival: Arrival = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        if not self.rate > 0 or math.isinf(self.rate):
            raise ValueError("the request rate must be a positive number")
        if not self.burstiness > 0:
            raise ValueError("burstiness must be positive")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError("the concurrency ceiling must be at least 1")


@dataclass(frozen=True)
class Replay:
    """Open loop at a trace's arrival times: ``offsets_ns`` from the first arrival, already scaled by
    ``speed`` (2 replays twice as fast)."""

    offsets_ns: tuple[int, ...]
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.offsets_ns:
            raise ValueError("a replay needs at least one arrival")
        if not self.speed > 0 or math.isinf(self.speed):
            raise ValueError("the replay speed must be a positive number")


LoadShape = Burst | Concurrency | Rate | Replay


@dataclass(frozen=True)
class Warmup:
    """Requests sent before measuring: the first ``requests`` of them, and all started before ``seconds``."""

    requests: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Stop:
    """When the measured phase ends: after ``requests`` requests or ``seconds`` (whichever comes first)."""

    requests: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.requests is None and self.seconds is None:
            raise ValueError("a run needs a request count or a duration")
        if self.requests is not None and self.requests < 1:
            raise ValueError("the request count must be at least 1")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError("the duration must be positive")


class Phases:
    """Classifies requests in start order: warm-up first, then measured, then stop."""

    def __init__(self, warmup: Warmup, stop: Stop) -> None:
        self.warmup = warmup
        self.stop = stop
        self.started = 0
        self.measured = 0
        self.measure_start_ns: int | None = None

    def classify(self, offset_ns: int) -> Phase:
        """Phase of the next request, which starts ``offset_ns`` after the run began (non-decreasing)."""
        if self.measure_start_ns is None and (
            self.started < self.warmup.requests or offset_ns < self.warmup.seconds * NS_PER_S
        ):
            self.started += 1
            return "warmup"
        if self.measure_start_ns is None:
            self.measure_start_ns = offset_ns
        if self.stop.requests is not None and self.measured >= self.stop.requests:
            return "stop"
        if (
            self.stop.seconds is not None
            and offset_ns - self.measure_start_ns >= self.stop.seconds * NS_PER_S
        ):
            return "stop"
        self.started += 1
        self.measured += 1
        return "measure"


def _unit_gaps(shape: Rate, rng: random.Random) -> Iterator[float]:
    """Gaps between arrivals in units of the mean gap (mean 1)."""
    while True:
        if shape.arrival == "constant":
            yield 1.0
        elif shape.arrival == "poisson":
            yield rng.expovariate(1.0)
        else:
            yield rng.gammavariate(shape.burstiness, 1.0 / shape.burstiness)


def _time_of_work(s: float, rate: float, ramp_s: float) -> float:
    """Seconds until ``s`` arrivals are expected, the rate ramping linearly to ``rate`` over ``ramp_s``."""
    if ramp_s <= 0:
        return s / rate
    ramp_work = rate * ramp_s / 2
    if s < ramp_work:
        return math.sqrt(2 * ramp_s * s / rate)
    return ramp_s + (s - ramp_work) / rate


def arrival_offsets(shape: Burst | Rate | Replay, *, ramp_up_s: float = 0.0, seed: int = 0) -> Iterator[int]:
    """Intended start of each request, in nanoseconds from the run's start (non-decreasing).

    Endless except for a single burst and a replay. The same seed gives the same offsets.
    """
    if isinstance(shape, Replay):
        yield from shape.offsets_ns
        return
    if isinstance(shape, Burst):
        k = 0
        while True:
            offset = round(k * (shape.every_s or 0.0) * NS_PER_S)
            for _ in range(shape.size):
                yield offset
            if shape.every_s is None:
                return
            k += 1
    rng = random.Random(seed)
    work = 0.0
    for gap in _unit_gaps(shape, rng):
        yield round(_time_of_work(work, shape.rate, ramp_up_s) * NS_PER_S)
        work += gap


def worker_start_offsets(shape: Concurrency, *, ramp_up_s: float = 0.0) -> list[int]:
    """First start of each closed-loop worker: all at 0, or spread evenly over the ramp-up."""
    n = shape.concurrency
    return [round(ramp_up_s * NS_PER_S * j / n) for j in range(n)]
