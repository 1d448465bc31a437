"""Triton's Prometheus ``/metrics`` scraped during a run, summarised beside the client's figures.

Counters (``nv_inference_request_success``, ``..._queue_duration_us``, ``..._compute_infer_duration_us``,
``..._request_duration_us``; triton-protocol.md §1.6) are differenced between the first and the last
scrape and divided by the requests completed in between, per model. Gauges
(``nv_inference_pending_request_count`` and every ``nv_trt_llm_*`` family the TRT-LLM backend reports)
are summarised over all scrapes. The window includes warm-up requests. A server without a metrics
endpoint only leaves a note in the report; it never fails the run.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from trtclient.errors import TritonError
from trtclient.prometheus import Sample
from trtclient.timing import now_ns

__all__ = ["MetricsScraper", "summarize_scrapes"]

_COUNTERS = {
    "requests": "nv_inference_request_success",
    "failures": "nv_inference_request_failure",
    "queue_us": "nv_inference_queue_duration_us",
    "compute_infer_us": "nv_inference_compute_infer_duration_us",
    "request_us": "nv_inference_request_duration_us",
}
_PENDING = "nv_inference_pending_request_count"


def _model_counters(samples: Iterable[Sample]) -> dict[str, dict[str, float]]:
    names = {v: k for k, v in _COUNTERS.items()}
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in samples:
        key = names.get(s.name)
        if key is not None:
            out[s.label("model")][key] += s.value
    return out


def _gauge_key(s: Sample) -> str:
    extra = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in ("model", "version"))
    model = s.label("model")
    where = f"{model}:" if model else ""
    return f"{where}{s.name}" + (f"{{{extra}}}" if extra else "")


def summarize_scrapes(scrapes: list[list[Sample]]) -> dict[str, Any]:
    """Per-model counter deltas (first to last scrape) and gauge statistics over every scrape."""
    if not scrapes:
        return {"scrapes": 0, "models": {}, "trt_llm": {}}
    first, last = _model_counters(scrapes[0]), _model_counters(scrapes[-1])
    models: dict[str, dict[str, float | None]] = {}
    for model, end in sorted(last.items()):
        start = first.get(model, {})
        delta = {k: end.get(k, 0.0) - start.get(k, 0.0) for k in _COUNTERS}
        done = delta["requests"] + delta["failures"]
        entry: dict[str, float | None] = {"requests": delta["requests"], "failures": delta["failures"]}
        for key, out_key in (
            ("queue_us", "queue_ms_per_request"),
            ("compute_infer_us", "compute_infer_ms_per_request"),
            ("request_us", "request_ms_per_request"),
        ):
            entry[out_key] = delta[key] / done / 1000 if done else None
        models[model] = entry
    gauges: dict[str, list[float]] = defaultdict(list)
    for scrape in scrapes:
        for s in scrape:
            if s.name == _PENDING or s.name.startswith("nv_trt_llm_"):
                gauges[_gauge_key(s)].append(s.value)
    for key, values in gauges.items():
        model, _, name = key.partition(":")
        if name.startswith(_PENDING) and model in models:
            models[model]["pending_max"] = max(values)
            models[model]["pending_mean"] = math.fsum(values) / len(values)
    trt = {
        k: {"min": min(v), "mean": math.fsum(v) / len(v), "max": max(v), "last": v[-1]}
        for k, v in sorted(gauges.items())
        if "nv_trt_llm_" in k
    }
    return {"scrapes": len(scrapes), "models": models, "trt_llm": trt}


@dataclass
class MetricsScraper:
    """Calls ``fetch`` (e.g. ``AsyncTritonClient.metrics``) every ``interval_s`` while running."""

    fetch: Callable[[], Awaitable[list[Sample]]]
    url: str = ""
    interval_s: float = 0.5
    scrapes: list[list[Sample]] = field(default_factory=list)
    stamps_ns: list[int] = field(default_factory=list)
    error: str | None = None
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def scrape_once(self) -> bool:
        """One scrape; on failure remember why and return False."""
        try:
            samples = await self.fetch()
        except (TritonError, OSError, ValueError) as exc:
            self.error = str(exc) or type(exc).__name__
            return False
        self.scrapes.append(samples)
        self.stamps_ns.append(now_ns())
        return True

    async def start(self) -> None:
        """Take the first scrape, then keep scraping in the background (not at all if the first fails)."""
        if await self.scrape_once():
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.scrape_once()

    async def stop(self) -> None:
        """Stop the background scrapes and take a last one."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            await self.scrape_once()

    def summary(self) -> dict[str, Any]:
        """The summary for the report (``error`` set when the endpoint could not be read)."""
        out: dict[str, Any] = {"url": self.url, **summarize_scrapes(self.scrapes)}
        if not self.scrapes:
            out["error"] = self.error or "no scrape"
        return out
